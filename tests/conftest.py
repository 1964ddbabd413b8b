"""Shared fixtures: a real PostgreSQL and a real Kafka-compatible broker, and the whole stack.

Set SPENDSTREAM_DATABASE_URL or SPENDSTREAM_KAFKA_BOOTSTRAP to test against servers of your own;
otherwise the embedded ones start once per session.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from services.core.auth import create_key
from services.core.db import migrate
from services.core.settings import Settings
from services.devstack.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from services.devstack.stack import Stack


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("SPENDSTREAM_DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", free_port(), durable=False)
    server.start()
    yield server.dsn
    server.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("SPENDSTREAM_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = EmbeddedKafka(free_port(), tmp_path_factory.mktemp("kafka") / "tansu.log")
    broker.start()
    yield broker.bootstrap
    broker.stop()


@pytest.fixture(scope="session")
async def migrated_dsn(postgres_dsn: str) -> str:
    await migrate(postgres_dsn)
    return postgres_dsn


@pytest.fixture
async def db(migrated_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(migrated_dsn)
    yield conn
    await conn.close()


def stack_settings(data_dir: Path, dsn: str, bootstrap: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=dsn,
        kafka_bootstrap=bootstrap,
        api_port=free_port(),
        ingest_port=free_port(),
        scorer_port=free_port(),
        forecaster_port=free_port(),
        api_key_cache_seconds=0.5,
        categorize_refresh_s=1.0,
        webhook_secret="test-installation-secret-new,test-installation-secret-old",
        cluster_interval_s=2.0,
        forecast_check_interval_s=5.0,
        budget_check_interval_s=1.0,
        model_check_interval_s=2.0,
        # The fuzzers send one key's requests as fast as the services answer; the limit itself
        # is tested in-process (tests/test_ratelimit.py).
        api_rate_limit="100000/second",
        ingest_rate_limit="100000/second",
        # The pipeline tests post transactions of fixed past dates (no test depends on today)
        # and expect their alerts: here every transaction counts as live. Historical ones are
        # tested against explicit ingest times (tests/test_rescoring.py, tests/test_scoring.py).
        live_alert_within_hours=24 * 365 * 100,
    )


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, postgres_dsn: str, kafka_bootstrap: str
) -> Iterator[Stack]:
    """The four services as processes over the real broker and database."""
    running = Stack(stack_settings(tmp_path_factory.mktemp("stack"), postgres_dsn, kafka_bootstrap))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def new_user(migrated_dsn: str):  # type: ignore[no-untyped-def]
    """Creates a user with a fresh key: ``(user_id, secret) = await new_user("name")``."""

    async def make(prefix: str) -> tuple[str, str]:
        user_id = f"{prefix}-{os.urandom(4).hex()}"
        conn = await asyncpg.connect(migrated_dsn)
        try:
            return user_id, (await create_key(conn, user_id)).secret
        finally:
            await conn.close()

    return make


@pytest.fixture
async def fresh_dsn(postgres_dsn: str) -> str:
    """A database of its own, migrated, for tests that need an empty registry or tables."""
    name = f"t_{os.urandom(5).hex()}"
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = postgres_dsn.rsplit("/", 1)[0] + f"/{name}"
    await migrate(dsn)
    return dsn
