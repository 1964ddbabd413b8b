"""Ingest's SQL: the users it accepts webhooks for, their webhook secrets, and the signed
deliveries already received (so a captured request cannot be replayed)."""

from __future__ import annotations

import hashlib
import secrets

import asyncpg

MAX_ACTIVE_SECRETS = 2


async def user_exists(pool: asyncpg.Pool, user_id: str) -> bool:
    return bool(
        await pool.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE user_id = $1)", user_id)
    )


async def webhook_secrets(pool: asyncpg.Pool, user_id: str) -> list[str]:
    rows = await pool.fetch(
        """SELECT secret FROM webhook_secrets WHERE user_id = $1 AND revoked_at IS NULL
           ORDER BY created_at DESC LIMIT $2""",
        user_id,
        MAX_ACTIVE_SECRETS,
    )
    return [r["secret"] for r in rows]


def _delivery_key(signature: str) -> bytes:
    return hashlib.sha256(signature.encode()).digest()


async def claim_delivery(pool: asyncpg.Pool, signature: str, keep_s: float) -> bool:
    """Record a signed delivery; False if it was received before (a replay). Deliveries older
    than ``keep_s`` are forgotten: their signatures are past the timestamp tolerance anyway."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM webhook_deliveries WHERE received_at < now() - make_interval(secs => $1)",
            keep_s,
        )
        claimed = await conn.fetchval(
            """INSERT INTO webhook_deliveries (signature_sha256) VALUES ($1)
               ON CONFLICT DO NOTHING RETURNING true""",
            _delivery_key(signature),
        )
    return bool(claimed)


async def release_delivery(pool: asyncpg.Pool, signature: str) -> None:
    """Forget a delivery that was not accepted after all, so the sender may retry it."""
    await pool.execute(
        "DELETE FROM webhook_deliveries WHERE signature_sha256 = $1", _delivery_key(signature)
    )


async def rotate_webhook_secret(conn: asyncpg.Connection, user_id: str) -> str:
    """A new secret for the user; the previous one stays valid, older ones are revoked."""
    secret = f"whsec_{secrets.token_urlsafe(32)}"
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO users (user_id) VALUES ($1) ON CONFLICT DO NOTHING", user_id
        )
        await conn.execute(
            "INSERT INTO webhook_secrets (secret_id, user_id, secret) VALUES ($1, $2, $3)",
            secrets.token_hex(6),
            user_id,
            secret,
        )
        await conn.execute(
            """UPDATE webhook_secrets SET revoked_at = now()
               WHERE user_id = $1 AND revoked_at IS NULL AND secret_id NOT IN (
                   SELECT secret_id FROM webhook_secrets WHERE user_id = $1 AND revoked_at IS NULL
                   ORDER BY created_at DESC LIMIT $2)""",
            user_id,
            MAX_ACTIVE_SECRETS,
        )
    return secret


async def accounts_of(pool: asyncpg.Pool, user_id: str, ids: list[str]) -> dict[str, str]:
    """The account of each of the user's stored transactions among ``ids``."""
    rows = await pool.fetch(
        """SELECT transaction_id, account_id FROM transactions
           WHERE user_id = $1 AND transaction_id = ANY($2::text[])""",
        user_id,
        ids,
    )
    return {r["transaction_id"]: r["account_id"] for r in rows}
