"""No user's data shows in another user's answers, through auto-categorization or the shared
anomaly model (services/core/tenancy.py), over a real PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import asyncpg
import numpy as np
import pytest

from schemas import TransactionEvent
from services.analytics.embeddings import Embedder
from services.core.db import create_pool
from services.core.settings import Settings
from services.core.text import normalize_text
from services.scorer import store
from services.scorer.categorize import Categorizer
from services.scorer.categorize_types import Categorization

pytestmark = pytest.mark.integration
AT = datetime(2026, 11, 3, 12, tzinfo=UTC)


async def labelled(pool: asyncpg.Pool, user: str, tid: str, merchant: str, category: str) -> None:
    await pool.execute(
        """INSERT INTO transactions (user_id, transaction_id, account_id, ts, amount, direction,
               currency, merchant, merchant_key, category, category_source, channel, source,
               ingested_at)
           VALUES ($1, $2, 'card', $5, 12.50, 'debit', 'USD', $3, $4, $6, 'provided', 'card',
                   'api', $5)""",
        user,
        tid,
        merchant,
        normalize_text(merchant),
        AT,
        category,
    )


def uncategorized(user: str, tid: str, merchant: str) -> TransactionEvent:
    return TransactionEvent.model_validate(
        {
            "transaction_id": tid,
            "account_id": "card",
            "user_id": user,
            "timestamp": AT,
            "amount": "12.50",
            "merchant": merchant,
            "ingested_at": AT,
        }
    )


async def predicted(categorizer: Categorizer, user: str, merchant: str) -> str | None:
    (event,), _ = await categorizer.apply([uncategorized(user, f"new-{user}", merchant)])
    return event.category


async def test_categories_are_shared_only_when_five_users_agree_or_vetted(fresh_dsn: str) -> None:
    pool = await create_pool(fresh_dsn, size=2)
    try:
        categorizer = Categorizer(pool, Embedder(pool), Settings())
        for i in range(3):
            await labelled(pool, "ada", f"a{i}", "DR SMITH PSYCH CLINIC", "Dr Smith psychiatry")
        for user in ("u1", "u2", "u3", "u4"):
            await labelled(pool, user, f"{user}-1", "MOUNTAIN GOAT GEAR 12", "Outdoor")
        await categorizer.refresh_index()

        assert await predicted(categorizer, "ada", "DR SMITH PSYCH CLINIC") == (
            "Dr Smith psychiatry"
        ), "a user's own category for the merchant is their rule"
        assert await predicted(categorizer, "bob", "DR SMITH PSYCH CLINIC") != (
            "Dr Smith psychiatry"
        ), "one user's private category never reaches another"
        assert await predicted(categorizer, "bob", "MOUNTAIN GOAT GEAR 31") != "Outdoor", (
            "four users agreeing is not yet an aggregate"
        )
        await labelled(pool, "u5", "u5-1", "MOUNTAIN GOAT GEAR 7", "Outdoor")
        await categorizer.refresh_index()
        assert await predicted(categorizer, "bob", "MOUNTAIN GOAT GEAR 31") == "Outdoor", (
            "five distinct users agreeing is"
        )
        assert await predicted(categorizer, "newcomer", "STARBUCKS STORE 09871") == "Dining", (
            "well-known merchants come from the vetted catalogue, from the first transaction"
        )
        _, decided = await categorizer.apply([uncategorized("newcomer", "n-2", "Starbucks")])
        assert decided[("newcomer", "n-2")] == Categorization("predicted", 1.0), (
            "a merchant of the catalogue itself is looked up, not outvoted by its neighbours"
        )
    finally:
        await pool.close()


async def scored(pool: asyncpg.Pool, users: dict[str, int], marked: str) -> None:
    """``users``' transactions, scored; the feature rows of ``marked`` read 1, the others 0."""
    for user, n in users.items():
        for i in range(n):
            await labelled(pool, user, f"{user}-{i}", "CORNER SHOP", "Groceries")
        await pool.executemany(
            """INSERT INTO scores (user_id, transaction_id, score, is_anomaly, model_version,
                   features)
               VALUES ($1, $2, 0.1, false, 'cold', $3)""",
            [(user, f"{user}-{i}", [float(user == marked)] * 3) for i in range(n)],
        )


async def test_no_user_holds_more_than_a_fifth_of_the_training_data(fresh_dsn: str) -> None:
    pool = await create_pool(fresh_dsn, size=2)
    users = {"heavy": 600, **{f"light-{i}": 40 for i in range(9)}}
    try:
        await scored(pool, users, marked="heavy")
        # The heavy user also marks many of their own transactions legit, each counting ten
        # times: weighted rows count against the cap too.
        await pool.executemany(
            "INSERT INTO feedback (user_id, transaction_id, label) VALUES ($1, $2, 'legit')",
            [("heavy", f"heavy-{i}") for i in range(100)],
        )
        matrix = await store.training_matrix(pool, limit=1_000, legit_weight=10)
        rows = Counter("heavy" if row[0] == 1.0 else "light" for row in matrix)
        assert rows["heavy"] == 200, "a fifth of the 1,000-row limit, weights included"
        assert rows["light"] == 9 * 40, "everyone else is kept whole"
        assert np.isfinite(matrix).all()
    finally:
        await pool.close()


async def test_fewer_users_than_the_share_allows_split_the_training_data(fresh_dsn: str) -> None:
    """One user (a bank posting every card under one key) trains on all its rows up to the
    limit, two on half each: a fifth of the limit would only leave the model less data, since
    their share of it cannot be smaller."""
    pool = await create_pool(fresh_dsn, size=2)
    try:
        await scored(pool, {"bank": 1_200}, marked="bank")
        assert len(await store.training_matrix(pool, limit=1_000, legit_weight=10)) == 1_000
        await scored(pool, {"other": 300}, marked="bank")
        matrix = await store.training_matrix(pool, limit=1_000, legit_weight=10)
        rows = Counter("bank" if row[0] == 1.0 else "other" for row in matrix)
        assert rows == {"bank": 500, "other": 300}, rows
    finally:
        await pool.close()
