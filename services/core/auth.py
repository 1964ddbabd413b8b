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


class KeyVerifier:
    """Maps a bearer secret to its user, caching answers briefly so the hot path skips the database.

    A revoked key stops working within ``ttl_seconds``. The cache is bounded.
    """

    def __init__(self, pool: asyncpg.Pool, *, ttl_seconds: float = 30.0, max_entries: int = 10_000):
        self._pool = pool
        self._ttl = ttl_seconds
        self._max = max_entries
        self._cache: OrderedDict[bytes, tuple[float, str | None]] = OrderedDict()

    async def user_for(self, secret: str) -> str | None:
        digest = hash_key(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        user_id = await self._pool.fetchval(
            "SELECT user_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", digest
        )
        self._cache[digest] = (now, user_id)
        self._cache.move_to_end(digest)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return user_id  # type: ignore[no-any-return]
