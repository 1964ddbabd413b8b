import os
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from services.core.auth import KeyVerifier, create_key, hash_key, revoke_key
from services.core.db import load_migrations, migrate
from services.devstack.embedded import EmbeddedPostgres, free_port

pytestmark = pytest.mark.integration


def test_migrations_are_numbered_in_order() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions) and versions[0] == 1


async def test_migrate_applies_each_migration_exactly_once(postgres_dsn: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute("CREATE DATABASE migrate_once")
    finally:
        await conn.close()
    dsn = postgres_dsn.rsplit("/", 1)[0] + "/migrate_once"
    first = await migrate(dsn)
    second = await migrate(dsn)
    assert [m.version for m in first] == [m.version for m in load_migrations()]
    assert second == []
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in load_migrations()]
    finally:
        await conn.close()


async def test_only_the_hash_of_a_key_is_stored(db: asyncpg.Connection) -> None:
    issued = await create_key(db, "hash-only-user")
    row = await db.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", issued.key_id)
    assert row["key_hash"] == hash_key(issued.secret)
    stored = " ".join(str(v) for v in dict(row).values())
    assert issued.secret not in stored


async def test_revoked_keys_stop_working(db: asyncpg.Connection, migrated_dsn: str) -> None:
    issued = await create_key(db, "revoke-user")
    pool = await asyncpg.create_pool(migrated_dsn, min_size=1, max_size=2)
    try:
        verifier = KeyVerifier(pool, ttl_seconds=0)
        assert await verifier.user_for(issued.secret) == "revoke-user"
        assert await verifier.user_for(issued.secret + "x") is None
        assert await revoke_key(db, issued.key_id)
        assert await verifier.user_for(issued.secret) is None
    finally:
        await pool.close()


@pytest.mark.skipif(
    bool(os.environ.get("SPENDSTREAM_DATABASE_URL")), reason="only the embedded server is ours"
)
async def test_the_embedded_server_wants_its_password_even_on_loopback(postgres_dsn: str) -> None:
    url = urlsplit(postgres_dsn)
    assert url.password, "the embedded server's URL carries the password made for its data dir"
    without = postgres_dsn.replace(f":{url.password}@", "@")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(without)
    wrong = postgres_dsn.replace(f":{url.password}@", ":guess@")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)
    conn = await asyncpg.connect(postgres_dsn)
    await conn.close()


def test_the_password_file_is_its_owners_alone(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "data", free_port(), durable=False)
    server.start()
    try:
        assert server.password_file.stat().st_mode & 0o777 == 0o600
        assert server.password and server.password in server.dsn
    finally:
        server.remove()
