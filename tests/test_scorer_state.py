"""The scorer's state and models, over a real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import asyncpg
import numpy as np
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from schemas import TransactionEvent
from services.core.db import create_pool
from services.core.settings import Settings
from services.demo.generator import generate
from services.scorer import store
from services.scorer.features import compute_features
from services.scorer.model_features import MODEL_FEATURES
from services.scorer.registry import CONFIRMED_FRAUD_REMEMBERED_METRIC, ModelKeeper
from services.scorer.scoring import COLD_START_VERSION, AnomalyScorer
from services.scorer.state import rebuild_missing_histories

pytestmark = pytest.mark.integration
WINDOW = 64


def demo_events(users: int, months: int, seed: int) -> list[TransactionEvent]:
    records = generate(users, months, seed=seed, end=date(2026, 8, 1))
    records.sort(key=lambda r: r.transaction["timestamp"])
    now = datetime(2026, 8, 1, 6, tzinfo=UTC)  # ingested just after the history ends
    return [
        TransactionEvent.model_validate({**r.transaction, "user_id": r.user_id, "ingested_at": now})
        for r in records
    ]


async def score_and_store(
    pool: asyncpg.Pool, scorer: AnomalyScorer, events: list[TransactionEvent]
) -> None:
    for i in range(0, len(events), 200):
        batch = events[i : i + 200]
        await store.persist_scored(pool, batch, scorer.score_batch(batch))


async def test_features_are_identical_after_a_restart(fresh_dsn: str) -> None:
    events = demo_events(users=2, months=3, seed=31)
    history, upcoming = events[:-40], events[-40:]
    pool = await create_pool(fresh_dsn, size=2)
    try:
        before = AnomalyScorer(threshold=0.99, window=WINDOW)
        await score_and_store(pool, before, history)

        after = AnomalyScorer(threshold=0.99, window=WINDOW)  # a new process: empty memory
        replayed = await rebuild_missing_histories(pool, after.features, upcoming, WINDOW)
        assert replayed > 0
        for event in upcoming:
            account = (event.user_id, event.account_id)
            expected, _ = compute_features(before.features.state(account), event)
            actual, _ = compute_features(after.features.state(account), event)
            np.testing.assert_array_equal(actual, expected)
            before.features.learn(event)
            after.features.learn(event)
    finally:
        await pool.close()


async def test_one_scorer_trains_and_every_scorer_hot_swaps(fresh_dsn: str) -> None:
    settings = Settings(
        database_url=fresh_dsn,
        min_training_rows=300,
        retrain_after_transactions=10_000,
        model_signing_key="one key for the installation",
    )
    events = demo_events(users=3, months=3, seed=5)
    pools = [await create_pool(fresh_dsn, size=3) for _ in range(2)]
    try:
        scorers = [AnomalyScorer(threshold=0.995) for _ in pools]
        await score_and_store(pools[0], scorers[0], events)
        fraud = events[10]
        legit = events[11]
        async with pools[0].acquire() as conn:
            await conn.execute(
                """INSERT INTO feedback (user_id, transaction_id, label)
                   VALUES ($1, $2, 'fraud'), ($3, $4, 'legit')""",
                fraud.user_id,
                fraud.transaction_id,
                legit.user_id,
                legit.transaction_id,
            )
        matrix = await store.training_matrix(pools[0], 100_000, legit_weight=10)
        assert len(matrix) == len(events) - 1 + 9  # fraud left out, legit counted ten times

        keepers = [
            ModelKeeper(pool, scorer, settings) for pool, scorer in zip(pools, scorers, strict=True)
        ]
        assert all(s.version == COLD_START_VERSION for s in scorers)
        trained = await asyncio.gather(*(k.train_if_due() for k in keepers))
        assert sum(v is not None for v in trained) == 1, "the advisory lock lets one scorer train"
        async with pools[0].acquire() as conn:
            rows = await conn.fetch("SELECT version, training_rows, metrics FROM anomaly_models")
        assert len(rows) == 1 and rows[0]["training_rows"] == len(matrix)
        weights = set(rows[0]["metrics"]["weights"])
        assert weights == {"lof", "ocsvm", "autoencoder", "profile", "hst"}
        assert await keepers[0].train_if_due() is None, "nothing new to learn from yet"

        for keeper in keepers:
            assert await keeper.refresh()
        assert {s.version for s in scorers} == {rows[0]["version"]}
        scored = scorers[1].score_batch(events[-50:])
        assert {s.model_version for s in scored} == {rows[0]["version"]}
        assert set(scored[0].detector_scores) == {"lof", "ocsvm", "autoencoder", "profile", "hst"}

        stranger = AnomalyScorer(threshold=0.995)
        other_key = settings.replace(model_signing_key=SecretStr("another installation"))
        assert not await ModelKeeper(pools[1], stranger, other_key).refresh(), (
            "a model signed with another key is never loaded"
        )
        assert stranger.version == COLD_START_VERSION
    finally:
        for pool in pools:
            await pool.close()


async def test_drift_watcher_stores_and_publishes_once_per_window(fresh_dsn: str) -> None:
    from services.scorer.drift_watcher import BACKFILL_WINDOWS, DriftWatcher

    rng = np.random.default_rng(4)
    start = datetime(2026, 5, 1, 12, tzinfo=UTC)
    now = datetime(2026, 7, 1, tzinfo=UTC)

    def tx(i: int, day: int, category: str, amount: float) -> TransactionEvent:
        return TransactionEvent.model_validate(
            {
                "transaction_id": f"d{i}",
                "account_id": "main",
                "user_id": "drifter",
                "timestamp": start + timedelta(days=day, minutes=i % 600),
                "amount": f"{amount:.2f}",
                "category": category,
                "ingested_at": now,
            }
        )

    events = []
    for day in range(42):
        for _ in range(10):
            shifted = day >= 35
            category = (
                "Travel" if shifted and rng.random() < 0.6 else rng.choice(["Groceries", "Dining"])
            )
            events.append(tx(len(events), day, str(category), float(rng.lognormal(3, 0.5))))
    published = []

    async def publish(event) -> None:  # type: ignore[no-untyped-def]
        published.append(event)

    pool = await create_pool(fresh_dsn, size=3)
    try:
        scorer = AnomalyScorer(threshold=0.99)
        await score_and_store(pool, scorer, events)
        watcher = DriftWatcher(pool, Settings(database_url=fresh_dsn), publish)
        # 42 days arrive at once: one comparison per day they span (at most BACKFILL_WINDOWS),
        # for the global scope and the account.
        assert await watcher.check() == 2 * BACKFILL_WINDOWS
        history = await pool.fetch(
            "SELECT window_end, status FROM drift_metrics WHERE scope = 'account' ORDER BY 1"
        )
        shift = start + timedelta(days=35)
        assert all(r["status"] != "drift" for r in history if r["window_end"] <= shift)
        assert history[-1]["status"] == "drift", "the week after the shift drifted"
        rows = await pool.fetch(
            """SELECT DISTINCT ON (scope) * FROM drift_metrics
               ORDER BY scope, window_end DESC"""
        )
        assert [r["scope"] for r in rows] == ["account", "global"]
        account = rows[0]
        assert account["status"] == "drift" and "category_jsd" in account["breached"]
        assert account["category_jsd"] >= 0.1
        assert account["top_contributors"][0]["category"] == "Travel"
        assert {e.scope for e in published} == {"account", "global"}
        drifted = await pool.fetchval("SELECT count(*) FROM drift_metrics WHERE status = 'drift'")
        assert len(published) == drifted, "each drifted window published once"
        event = next(e for e in published if e.scope == "account")
        assert (event.user_id, event.account_id, event.metric) == (
            "drifter",
            "main",
            "category_jsd",
        )

        assert await watcher.check() == 0, "nothing new"
        late = tx(10_000, 41, "Dining", 12.0)  # same day, same window
        await store.persist_scored(pool, [late], scorer.score_batch([late]))
        assert await watcher.check() == 0, "at most once per interval per scope"
    finally:
        await pool.close()


async def test_embeddings_are_never_computed_twice_across_restarts(fresh_dsn: str) -> None:
    from services.analytics.embeddings import Embedder, load_model

    model = load_model()
    pool = await create_pool(fresh_dsn, size=2)
    try:
        first = Embedder(pool, model=model)
        vectors = await first.embed(["blue bottle coffee", "shell oil", "blue bottle coffee"])
        assert first.encoded == 2
        after_restart = Embedder(pool, model=model)  # a new process: empty memory, same database
        again = await after_restart.embed(["shell oil", "blue bottle coffee"])
        assert after_restart.encoded == 0 and after_restart.hits == 2
        np.testing.assert_allclose(again[1], vectors[0], rtol=1e-6)
    finally:
        await pool.close()


async def test_one_accounts_impossible_dates_do_not_stop_drift_for_everyone(
    fresh_dsn: str,
) -> None:
    """A far-future row that got in before ingest checked dates: skipped and counted, while
    every other scope, the global one included, is still compared."""
    from services.core.metrics import JOB_SKIPS
    from services.scorer.drift_watcher import DriftWatcher

    events = demo_events(users=1, months=2, seed=8)
    pool = await create_pool(fresh_dsn, size=3)
    try:
        await score_and_store(pool, AnomalyScorer(threshold=0.99), events)
        await pool.execute(
            """INSERT INTO transactions (user_id, transaction_id, account_id, ts, amount,
                   direction, currency, channel, source, ingested_at)
               VALUES ('faraway', 'f1', 'card', '9999-12-31T12:00:00Z', 5, 'debit', 'USD',
                       'card', 'api', '2026-08-01T00:00:00Z')"""
        )
        skipped = JOB_SKIPS.labels("drift", "OverflowError")
        before = skipped._value.get()

        async def publish(event: object) -> None:
            return None

        watcher = DriftWatcher(pool, Settings(database_url=fresh_dsn), publish)
        stored = await watcher.check()
        rows = await pool.fetch("SELECT scope, user_id, account_id FROM drift_metrics")
        assert {r["scope"] for r in rows} == {"global", "account"} and stored == len(rows)
        compared = {(r["user_id"], r["account_id"]) for r in rows if r["scope"] == "account"}
        assert compared == {(e.user_id, e.account_id) for e in events}
        assert skipped._value.get() == before + 1, "the impossible account is counted"
    finally:
        await pool.close()


def _purchase(user: str, n: int, merchant: str, when: datetime) -> TransactionEvent:
    return TransactionEvent.model_validate(
        {
            "transaction_id": f"{user}-{merchant[-4:]}-{n}",
            "account_id": "card",
            "user_id": user,
            "timestamp": when.isoformat(),
            "amount": "24.99",
            "merchant": merchant,
            "channel": "card",
            "ingested_at": when,
        }
    )


async def test_confirmed_fraud_reaches_later_scores_and_only_their_owners(fresh_dsn: str) -> None:
    """Fraud confirmed at a terminal marks its owner's later purchases there; other users learn of
    it only once at least five distinct other users confirmed fraud there."""
    settings = Settings(database_url=fresh_dsn, model_signing_key="k")
    start = datetime(2026, 7, 1, 12, tzinfo=UTC)
    users = [f"user-{i}" for i in range(7)]
    events = [
        _purchase(user, n, terminal, start + timedelta(days=n, minutes=i))
        for n in range(12)
        for i, user in enumerate(users)
        for terminal in ("Terminal 00042", "Terminal 00043")
    ]
    pool = await create_pool(fresh_dsn, size=2)
    try:
        scorer = AnomalyScorer(threshold=0.97)
        await score_and_store(pool, scorer, events)
        keeper = ModelKeeper(pool, scorer, settings)

        async def confirm(*confirming: str) -> None:
            async with pool.acquire() as conn:
                await conn.executemany(
                    "INSERT INTO feedback (user_id, transaction_id, label) VALUES ($1, $2, 'fraud')"
                    " ON CONFLICT DO NOTHING",
                    [(user, f"{user}-0042-3") for user in confirming],
                )
            assert await keeper.remember_confirmed_fraud() == len(confirming)

        def reasons(user: str, terminal: str = "Terminal 00042") -> set[str]:
            later = _purchase(user, 99, terminal, start + timedelta(days=14))
            return {r["feature"] for r in scorer.score_batch([later])[0].explanation}

        await confirm("user-0")
        assert await keeper.count_merchant_traffic() == 1
        later = (start + timedelta(days=14)).timestamp()
        own = scorer.confirmed.signals("user-0", "card", "terminal 00042", later)
        assert own.merchant_fraud_share == pytest.approx(1 / 12), "1 of 12 purchases there"
        assert "merchant_confirmed_fraud" in reasons("user-0")
        assert "account_confirmed_fraud" in reasons("user-0"), "the card itself was hit"
        assert not {"merchant_confirmed_fraud", "merchant_confirmed_fraud_shared"} & reasons(
            "user-6"
        ), "one user's label never shows in another user's answers"
        await confirm("user-1", "user-2", "user-3")
        assert await keeper.count_merchant_traffic() >= 3, "newly confirmed: counted at once"
        assert await keeper.count_merchant_traffic() == 0, "nothing new, nor a minute gone"
        assert "merchant_confirmed_fraud_shared" not in reasons("user-6"), "4 users: too few"
        await confirm("user-4")
        assert "merchant_confirmed_fraud_shared" in reasons("user-6"), "5 distinct users"
        assert "merchant_confirmed_fraud_shared" not in reasons("user-6", "Terminal 00043")
        assert await keeper.remember_confirmed_fraud() == 0, "looking again adds nothing twice"
        taken_in = REGISTRY.get_sample_value(CONFIRMED_FRAUD_REMEMBERED_METRIC) or 0.0
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO feedback (user_id, transaction_id, label) VALUES ($1, $2, 'fraud')",
                "user-5",
                "user-5-0042-3",
            )
        await keeper.tick()
        await keeper.tick()
        after = REGISTRY.get_sample_value(CONFIRMED_FRAUD_REMEMBERED_METRIC) or 0.0
        assert after - taken_in == 1, "the count a chargeback feed waits on: each fraud once"
        assert (
            scorer.confirmed.signals("user-6", "card", "terminal 00042", 0.0).shared_at_merchant
            == 0
        )
    finally:
        await pool.close()


@pytest.mark.parametrize("as_data_doubles", [True, False])
async def test_retraining_as_the_data_doubles_can_be_turned_off(
    fresh_dsn: str, as_data_doubles: bool
) -> None:
    events = demo_events(users=3, months=3, seed=5)
    pool = await create_pool(fresh_dsn, size=2)
    try:
        async with pool.acquire() as conn:
            await store.save_model(
                conn, "registered", 200, {"features": list(MODEL_FEATURES)}, b"-", "test"
            )
        settings = Settings(
            database_url=fresh_dsn,
            min_training_rows=200,
            retrain_after_transactions=10_000,
            retrain_as_data_doubles=as_data_doubles,
        )
        keeper = ModelKeeper(pool, AnomalyScorer(threshold=0.99), settings)
        await score_and_store(pool, AnomalyScorer(threshold=0.99), events[:150])
        assert not await keeper.training_due(), "150 new rows: the data has not doubled yet"
        await score_and_store(pool, AnomalyScorer(threshold=0.99), events[150:250])
        assert await keeper.training_due() is as_data_doubles, "250 new rows on a model of 200"
    finally:
        await pool.close()


async def test_the_first_model_waits_for_accounts_with_a_history(fresh_dsn: str) -> None:
    """A fresh card stream's first rows are cards on their first purchases: a model fitted on
    them would call the same cards' ordinary purchases a week later rare."""
    events = demo_events(users=3, months=3, seed=5)
    first_purchases = [
        event.model_copy(update={"account_id": f"card-{i}", "transaction_id": f"first-{i}"})
        for i, event in enumerate(events)
    ]
    settings = Settings(database_url=fresh_dsn, min_training_rows=300)
    pool = await create_pool(fresh_dsn, size=2)
    try:
        keeper = ModelKeeper(pool, AnomalyScorer(threshold=0.99), settings)
        await score_and_store(pool, AnomalyScorer(threshold=0.99), first_purchases[:400])
        assert not await keeper.training_due(), "400 rows, every one a card's first"
        await score_and_store(pool, AnomalyScorer(threshold=0.99), events[:400])
        assert await keeper.training_due(), "and now rows of accounts with a history"
    finally:
        await pool.close()
