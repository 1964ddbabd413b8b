"""PostgreSQL plumbing shared by every service: the pool and the migration runner."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import IntEnum
from importlib import resources
from typing import Any

import asyncpg

from services.core.text import MERCHANT_KEY_VERSION, UNKNOWN_MERCHANT, merchant_key_text

log = logging.getLogger(__name__)

MIGRATIONS_PACKAGE = "services.core.migrations"


class Lock(IntEnum):
    """Every PostgreSQL advisory lock of Spendstream, in one place so that no two jobs share an
    id: each names a job only one process of a deployment does at a time."""

    MIGRATION = 0x5E7D_0001
    TRAINING = 0x5E7D_0002
    DRIFT = 0x5E7D_0003
    FORECAST_REFRESH = 0x5E7D_0004
    CLUSTERING = 0x5E7D_0005
    RESCORING = 0x5E7D_0006
    BUDGET_ALERTS = 0x5E7D_0007


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, size: int = 8, **kwargs: Any) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn, min_size=1, max_size=size, init=_init_connection, command_timeout=60, **kwargs
    )


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The ordered SQL files shipped in ``services/core/migrations``, named ``NNNN_name.sql``."""
    migrations = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        number, _, rest = entry.name.partition("_")
        migrations.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {versions}")
    return migrations


@asynccontextmanager
async def advisory_lock(
    pool: asyncpg.Pool, lock_id: Lock
) -> AsyncIterator[asyncpg.Connection | None]:
    """Hold a PostgreSQL advisory lock for the block, yielding its connection; yields None at
    once when another process holds it, so only one instance does the work."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", int(lock_id)):
            yield None
            return
        try:
            yield conn
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", int(lock_id))


async def migrate(dsn: str) -> list[Migration]:
    """Apply every migration not yet applied, each in its own transaction; return those applied."""
    conn = await asyncpg.connect(dsn)
    try:
        # Several processes may start at once; the lock makes them take turns.
        await conn.execute("SELECT pg_advisory_lock($1)", int(Lock.MIGRATION))
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        done = []
        for migration in load_migrations():
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("applied migration %04d_%s", migration.version, migration.name)
            done.append(migration)
        await _rekey_merchants(conn)
        return done
    finally:
        await conn.close()


_STORED_MERCHANT_TEXTS = """
SELECT DISTINCT coalesce(nullif(merchant, ''), description) AS raw, merchant_key
FROM transactions WHERE merchant_key IS NOT NULL"""
# A person's rule for a shop follows the shop to its new key (before the transactions move, since
# they say which of the person's shops an old key meant); a rule already on the new key stands.
_REKEY_RULES = """
INSERT INTO category_rules (user_id, merchant_key, category, updated_at)
SELECT DISTINCT ON (r.user_id, c.new) r.user_id, c.new, r.category, r.updated_at
FROM unnest($1::text[], $2::text[], $3::text[]) AS c(raw, old, new)
JOIN category_rules r ON r.merchant_key = c.old
WHERE EXISTS (SELECT 1 FROM transactions t
              WHERE t.user_id = r.user_id AND t.merchant_key = c.old
                AND coalesce(nullif(t.merchant, ''), t.description) = c.raw)
ORDER BY r.user_id, c.new, r.updated_at DESC
ON CONFLICT (user_id, merchant_key) DO NOTHING"""
_REKEY_TRANSACTIONS = """
UPDATE transactions t SET merchant_key = c.new
FROM unnest($1::text[], $2::text[], $3::text[]) AS c(raw, old, new)
WHERE t.merchant_key = c.old AND coalesce(nullif(t.merchant, ''), t.description) = c.raw"""
_REKEY_CHARGES = """
UPDATE forecast_charges f SET merchant_key = t.merchant_key
FROM transactions t
WHERE t.user_id = f.user_id AND t.transaction_id = f.transaction_id
  AND f.merchant_key = ANY($1::text[]) AND t.merchant_key <> f.merchant_key
  AND t.merchant_key <> $2"""


async def _rekey_merchants(conn: asyncpg.Connection) -> None:
    """Derive stored merchant keys again when ``normalize_text``'s rules have changed since."""
    stored = await conn.fetchval("SELECT version FROM merchant_key_version")
    if stored >= MERCHANT_KEY_VERSION:
        return
    changed = [
        (row["raw"], row["merchant_key"], key)
        for row in await conn.fetch(_STORED_MERCHANT_TEXTS)
        if (key := merchant_key_text(row["raw"])) != row["merchant_key"]
    ]
    async with conn.transaction():
        if changed:
            raws, old, new = (list(column) for column in zip(*changed, strict=True))
            await conn.execute(_REKEY_RULES, raws, old, new)
            await conn.execute(_REKEY_TRANSACTIONS, raws, old, new)
            await conn.execute(_REKEY_CHARGES, sorted(set(old)), UNKNOWN_MERCHANT)
        await conn.execute("UPDATE merchant_key_version SET version = $1", MERCHANT_KEY_VERSION)
    # A fresh database has nothing to move: say so only where something moved.
    log.log(
        logging.INFO if changed else logging.DEBUG,
        "merchant keys derived again (rules %d -> %d): %d texts changed key",
        stored,
        MERCHANT_KEY_VERSION,
        len(changed),
    )
