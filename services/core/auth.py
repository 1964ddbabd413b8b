"""API keys: created by the CLI, stored only as SHA-256 hashes, verified by ingest and the API.

Keys carry 256 random bits, so a fast hash is safe here; a slow password hash would only add
latency to every request.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import asyncpg

KEY_PREFIX = "ss_"
USER_ID_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    user_id: str
    secret: str


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip().startswith(KEY_PREFIX):
        return None
    return token.strip()


async def set_base_currency(conn: asyncpg.Connection, users: list[str], currency: str) -> None:
    """The currency the users' totals, budgets and forecasts are in (users created already)."""
    await conn.execute(
        "UPDATE users SET base_currency = $2 WHERE user_id = ANY($1::text[])", users, currency
    )


async def create_key(conn: asyncpg.Connection, user_id: str, label: str | None = None) -> IssuedKey:
    key_id = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO users (user_id) VALUES ($1) ON CONFLICT DO NOTHING", user_id
        )
        await conn.execute(
            "INSERT INTO api_keys (key_id, user_id, key_hash, label) VALUES ($1, $2, $3, $4)",
            key_id,
            user_id,
            hash_key(secret),
            label,
        )
    return IssuedKey(key_id=key_id, user_id=user_id, secret=secret)


async def revoke_key(conn: asyncpg.Connection, key_id: str) -> bool:
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
    )
    return bool(status.endswith(" 1"))


async def list_keys(conn: asyncpg.Connection, user_id: str | None = None) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """SELECT key_id, user_id, label, created_at, revoked_at FROM api_keys
               WHERE $1::text IS NULL OR user_id = $1 ORDER BY created_at""",
            user_id,
        )
    )


def _remember(cache: OrderedDict[bytes, Any], key: bytes, value: Any, limit: int) -> None:
    cache[key] = value
    while len(cache) > limit:
        cache.popitem(last=False)


class KeyVerifier:
    """Maps a bearer secret to its user, caching answers briefly so the hot path skips the database.

    A revoked key stops working within ``ttl_seconds``. Both caches are bounded, and unknown keys
    have one of their own: a client spraying made-up keys fills that one, never evicting the
    valid keys (which would send every real request to the database).
    """

    def __init__(self, pool: asyncpg.Pool, *, ttl_seconds: float = 30.0, max_entries: int = 10_000):
        self._pool = pool
        self._ttl = ttl_seconds
        self._max = max_entries
        self._known: OrderedDict[bytes, tuple[float, str]] = OrderedDict()
        self._unknown: OrderedDict[bytes, float] = OrderedDict()

    async def user_for(self, secret: str) -> str | None:
        digest = hash_key(secret)
        now = time.monotonic()
        known = self._known.get(digest)
        if known is not None and now - known[0] < self._ttl:
            return known[1]
        refused = self._unknown.get(digest)
        if refused is not None and now - refused < self._ttl:
            return None
        user_id: str | None = await self._pool.fetchval(
            "SELECT user_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", digest
        )
        self._known.pop(digest, None)
        self._unknown.pop(digest, None)
        if user_id is None:
            _remember(self._unknown, digest, now, self._max)
        else:
            _remember(self._known, digest, (now, user_id), self._max)
        return user_id
