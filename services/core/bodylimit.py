"""A cap on request bodies at the ASGI layer: before routing, parsing or authentication.

Whatever a route does with its body (JSON, a multipart upload spooled to disk), it never sees more
than ``limit`` bytes of it: a declared Content-Length over the cap is answered 413 unread, and a
body that turns out longer is cut off where it crosses the cap. Nothing past the cap is buffered.
"""

from __future__ import annotations

import contextlib

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """Raised to the app from ``receive`` once the body crosses the cap."""


async def _send_413(send: Send, limit: int) -> None:
    body = orjson.dumps(
        {"detail": f"request body exceeds {limit} bytes; split it into smaller requests"}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await _send_413(send, self.limit)
            return
        received = 0
        exceeded = False
        started = False

        async def capped_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def send_unless_exceeded(message: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the app made of the cut-off body, the answer is 413
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, capped_receive, send_unless_exceeded)
        if exceeded and not started:
            await _send_413(send, self.limit)


def install_body_limit(app: FastAPI, limit: int) -> None:
    """Cap every route's body at ``limit`` bytes (see the module docstring)."""
    app.add_middleware(BodySizeLimit, limit=limit)
