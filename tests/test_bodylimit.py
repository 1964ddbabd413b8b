"""The ASGI body cap: refused before routing, parsing or authentication, nothing read past it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request, UploadFile

from services.core.bodylimit import install_body_limit
from services.core.http import install_error_handlers

LIMIT = 1_000


def capped_app() -> tuple[FastAPI, list[int]]:
    app = FastAPI()
    install_error_handlers(app)
    install_body_limit(app, LIMIT)
    seen: list[int] = []

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            seen.append(size)
        return {"size": size}

    @app.post("/upload")
    async def upload(file: UploadFile) -> dict[str, int]:
        return {"size": len(await file.read())}

    return app, seen


async def chunks(n: int, size: int = 300) -> AsyncIterator[bytes]:
    for _ in range(n):
        yield b"x" * size


async def test_bodies_under_the_cap_pass_and_over_it_are_413_with_nothing_read_past_it() -> None:
    app, seen = capped_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        assert (await c.post("/raw", content=b"x" * LIMIT)).json() == {"size": LIMIT}
        declared = await c.post("/raw", content=b"x" * (LIMIT + 1))
        assert declared.status_code == 413 and "exceeds 1000 bytes" in declared.text
        seen.clear()
        streamed = await c.post("/raw", content=chunks(100))  # chunked, no Content-Length
        assert streamed.status_code == 413
        assert max(seen, default=0) <= LIMIT, "the route never saw a byte past the cap"
        upload = await c.post("/upload", files={"file": ("big.csv", b"x" * 50_000)})
        assert upload.status_code == 413
        small = await c.post("/upload", files={"file": ("small.csv", b"x" * 100)})
        assert small.json() == {"size": 100}
