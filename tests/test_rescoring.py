"""A new model re-scores the recent past: stored feature rows, the new verdict stored in place,
and each transaction the new model flags first alerted once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from schemas import AnomalyAlert, TransactionEvent
from services.core.db import create_pool
from services.demo.generator import generate
from services.scorer import store
from services.scorer.ensemble import train_ensemble
from services.scorer.model_features import MODEL_FEATURES
from services.scorer.rescoring import Rescorer, _explanation
from services.scorer.scoring import COLD_START_VERSION, AnomalyScorer


def test_context_reasons_stay_and_the_detector_fallback_is_made_anew() -> None:
    context = {"text": "first time at this merchant", "feature": "merchant_new", "value": 1.0}
    stale = {"text": "unusual combination of features (strongest signal: hst)", "feature": "hst"}
    detectors = {"lof": 0.999, "hst": 0.4}
    assert _explanation([context, stale], detectors, flagged=True) == [context]
    [fallback] = _explanation([stale], detectors, flagged=True)
    assert fallback["feature"] == "lof" and "strongest signal: lof" in fallback["text"]
    assert _explanation([stale], detectors, flagged=False) == []


@pytest.mark.integration
async def test_a_new_model_rescores_cold_scores_and_alerts_the_newly_flagged_once(
    fresh_dsn: str,
) -> None:
    records = generate(users=2, months=4, seed=5, end=datetime(2026, 9, 1).date())
    records.sort(key=lambda r: r.transaction["timestamp"])
    now = datetime(2026, 9, 1, 6, tzinfo=UTC)
    # The first user's history arrives live, a minute after each purchase; the second user's is
    # imported at the end: scored, never alerted.
    events = [
        TransactionEvent.model_validate(
            {**r.transaction, "user_id": r.user_id}
            | {"ingested_at": now if r.user_id.endswith("1") else r.transaction["timestamp"]}
        )
        for r in records
    ]
    events = [
        e.model_copy(update={"ingested_at": e.timestamp + timedelta(minutes=1)})
        if e.ingested_at == e.timestamp
        else e
        for e in events
    ]
    imported = {(e.user_id, e.transaction_id) for e in events if e.ingested_at == now}
    by_key = {(e.user_id, e.transaction_id): e for e in events}
    planted = {
        (r.user_id, e.transaction_id) for r, e in zip(records, events, strict=True) if r.anomaly
    }
    scorer = AnomalyScorer(threshold=0.99, seed=0)
    cold = scorer.score_batch(events)
    assert {s.model_version for s in cold} == {COLD_START_VERSION}
    pool = await create_pool(fresh_dsn, size=3)
    alerts: list[AnomalyAlert] = []

    async def publish(batch: list[AnomalyAlert]) -> None:
        alerts.extend(batch)

    try:
        await store.persist_scored(pool, events, cold)
        X = np.array([s.features for s in cold])
        scorer.use_model(train_ensemble(X, version="ens-test", feature_names=MODEL_FEATURES))
        rescorer = Rescorer(pool, scorer, publish)
        assert await rescorer.catch_up() == len(events)
        rows = await pool.fetch(
            "SELECT user_id, transaction_id, is_anomaly, model_version, explanation, historical"
            " FROM scores"
        )
        assert {r["model_version"] for r in rows} == {"ens-test"}
        flagged = {(r["user_id"], r["transaction_id"]) for r in rows if r["is_anomaly"]}
        assert flagged & planted, "the ensemble finds planted anomalies the cold start missed"
        assert all(r["explanation"] for r in rows if r["is_anomaly"]), "every flag has a reason"
        was_flagged = {
            (e.user_id, e.transaction_id) for e, s in zip(events, cold, strict=True) if s.is_anomaly
        }
        old = {k for k in imported if now - by_key[k].timestamp > timedelta(days=3)}
        assert old and {
            r["historical"] for r in rows if (r["user_id"], r["transaction_id"]) in old
        } == {True}
        assert {(a.user_id, a.transaction_id) for a in alerts} == flagged - was_flagged - old
        assert flagged & old, "imported transactions are flagged like any other"
        assert {a.model_version for a in alerts} == {"ens-test"}
        by_id = {e.transaction_id: e for e in events}
        for alert in alerts:
            assert alert.timestamp == by_id[alert.transaction_id].timestamp  # its own offset
        assert await rescorer.catch_up() == 0, "nothing is stale any more"
        assert len(alerts) == len(flagged - was_flagged - old), "each is alerted once"
    finally:
        await pool.close()
