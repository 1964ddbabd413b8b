"""Per-key rate limits, and a key cache that made-up keys cannot flush."""

from __future__ import annotations

import os

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.core.auth import KeyVerifier, hash_key
from services.core.http import CurrentUser, install_error_handlers
from services.core.ratelimit import RateLimiter


class CountingPool:
    """Stands in for PostgreSQL's api_keys table, counting the lookups that reach it."""

    def __init__(self, keys: dict[str, str]):
        self.users = {hash_key(secret): user for secret, user in keys.items()}
        self.lookups = 0

    async def fetchval(self, _sql: str, digest: bytes) -> str | None:
        self.lookups += 1
        return self.users.get(digest)


async def test_made_up_keys_never_evict_a_valid_one() -> None:
    pool = CountingPool({"ss_valid": "ada"})
    verifier = KeyVerifier(pool, ttl_seconds=60, max_entries=100)  # type: ignore[arg-type]
    assert await verifier.user_for("ss_valid") == "ada"
    for _ in range(1_000):
        assert await verifier.user_for(f"ss_{os.urandom(8).hex()}") is None
    before = pool.lookups
    assert await verifier.user_for("ss_valid") == "ada"
    assert pool.lookups == before, "the valid key is still cached"
    sprayed = "ss_same_wrong_key"
    await verifier.user_for(sprayed)
    await verifier.user_for(sprayed)
    assert pool.lookups == before + 1, "an unknown key is remembered as unknown too"


@pytest.fixture
def limited_app() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    pool = CountingPool({"ss_a": "ada", "ss_b": "bob"})
    app.state.key_verifier = KeyVerifier(pool, ttl_seconds=60)  # type: ignore[arg-type]
    app.state.rate_limiter = RateLimiter("3/minute")

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"user": user}

    return TestClient(app)


def test_a_key_over_its_rate_gets_429_with_retry_after(limited_app: TestClient) -> None:
    def get(key: str):  # type: ignore[no-untyped-def]
        return limited_app.get("/me", headers={"Authorization": f"Bearer {key}"})

    assert [get("ss_a").status_code for _ in range(3)] == [200, 200, 200]
    refused = get("ss_a")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "3 per 1 minute" in refused.json()["detail"]
    assert get("ss_b").status_code == 200, "each key has its own allowance"


async def test_charts_render_a_few_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import threading
    import time

    import httpx

    from services.api import app as api_app
    from services.api.routes import charts
    from services.core.settings import Settings

    running, peak = 0, 0
    lock = threading.Lock()

    def slow_render(spec: dict[str, object]) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return b"png"

    async def no_database(*_: object) -> dict[str, object]:
        return {}

    monkeypatch.setitem(charts.RENDERERS, "png", ("image/png", slow_render))
    monkeypatch.setattr(charts, "chart_spec", no_database)
    app = api_app.create_app(Settings(chart_render_concurrency=2))
    app.state.key_verifier = KeyVerifier(CountingPool({"ss_a": "ada"}), ttl_seconds=60)  # type: ignore[arg-type]
    app.state.rate_limiter = RateLimiter("1000/second")
    app.state.pool = None
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        answers = await asyncio.gather(
            *(
                client.get("/v1/charts/trend.png", headers={"Authorization": "Bearer ss_a"})
                for _ in range(8)
            )
        )
    assert [a.status_code for a in answers] == [200] * 8
    assert peak == 2, "no more renders at once than the setting allows"
