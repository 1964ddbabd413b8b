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


async def test_an_upgrade_moves_stored_merchant_keys_with_the_rules_that_derive_them(
    fresh_dsn: str,
) -> None:
    """Keys stored under older normalization rules are derived again, with the person's rule and
    the recurring charges keyed by them, so a shop's history does not split at an upgrade."""
    conn = await asyncpg.connect(fresh_dsn)
    try:
        # As older releases stored them: "NATIONAL GRID NY" cut to its first word, and a name
        # in another script than Latin left with no letters at all.
        for tid, merchant, key in (
            ("t1", "NATIONAL GRID NY", "national"),
            ("t2", "NATIONAL CAR RENTAL NY", "national"),
            ("t3", "CHIPOTLE 1123", "chipotle"),
            ("t4", "ПЯТЁРОЧКА 1234", "unknown"),
        ):
            await conn.execute(
                """INSERT INTO transactions (user_id, transaction_id, account_id, ts, amount,
                       direction, currency, merchant, merchant_key, category, channel, source,
                       ingested_at)
                   VALUES ('ada', $1, 'card', '2026-11-03T12:00:00Z', 80, 'debit', 'USD', $2, $3,
                           'Utilities', 'card', 'api', '2026-11-03T12:00:05Z')""",
                tid,
                merchant,
                key,
            )
            await conn.execute(
                """INSERT INTO forecast_charges VALUES ('ada', $1, 'card', 'Utilities', $2, $3,
                       80, '2026-11-03T12:00:00')""",
                tid,
                key,
                merchant,
            )
        await conn.execute(
            "INSERT INTO category_rules (user_id, merchant_key, category) "
            "VALUES ('ada', 'national', 'Utilities')"
        )
        await conn.execute("UPDATE merchant_key_version SET version = 1")

        await migrate(fresh_dsn)

        keys = await conn.fetch("SELECT transaction_id, merchant_key FROM transactions ORDER BY 1")
        assert [r["merchant_key"] for r in keys] == [
            "national grid",
            "national car rental",
            "chipotle",
            "пятерочка",
        ]
        charged = await conn.fetch(
            "SELECT merchant_key FROM forecast_charges ORDER BY transaction_id"
        )
        assert [r["merchant_key"] for r in charged] == [r["merchant_key"] for r in keys]
        rules = await conn.fetch("SELECT merchant_key, category FROM category_rules ORDER BY 1")
        assert [(r["merchant_key"], r["category"]) for r in rules] == [
            ("national", "Utilities"),
            ("national car rental", "Utilities"),
            ("national grid", "Utilities"),
        ]
        assert await conn.fetchval("SELECT version FROM merchant_key_version") >= 3
    finally:
        await conn.close()
