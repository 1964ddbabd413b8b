from datetime import UTC, datetime, timedelta

import numpy as np
from sklearn.metrics import roc_auc_score

from schemas import TransactionEvent
from services.demo.generator import generate
from services.scorer.calibration import Calibrator, RollingCalibrator
from services.scorer.ensemble import train_ensemble
from services.scorer.model_features import MODEL_FEATURES
from services.scorer.scoring import COLD_START_VERSION, AnomalyScorer, severity


def demo_events(users: int = 4, months: int = 6) -> tuple[list[TransactionEvent], list[str | None]]:
    records = generate(users, months, seed=21, end=datetime(2026, 9, 1).date())
    records.sort(key=lambda r: r.transaction["timestamp"])
    now = datetime(2026, 9, 1, 6, tzinfo=UTC)  # ingested just after the history ends
    events = [
        TransactionEvent.model_validate({**r.transaction, "user_id": r.user_id, "ingested_at": now})
        for r in records
    ]
    return events, [r.anomaly for r in records]


def test_calibration_is_monotone_and_bounded() -> None:
    calibrator = Calibrator.fit(np.random.default_rng(0).normal(size=1000))
    grid = np.linspace(-10, 20, 500)
    calibrated = calibrator.calibrate(grid)
    assert np.all(np.diff(calibrated) >= 0)
    assert calibrated.min() >= 0 and calibrated.max() < 1
    assert calibrator.calibrate(np.array([15.0]))[0] > calibrator.calibrate(np.array([8.0]))[0]
    assert abs(calibrator.calibrate(np.array([0.0]))[0] - 0.5) < 0.05


def test_rolling_calibrator_waits_for_a_reference() -> None:
    rolling = RollingCalibrator(capacity=300, min_reference=100)
    assert rolling.p_value(np.array([1.0]))[0] == 1.0
    rolling.observe(np.random.default_rng(0).uniform(size=500))
    assert rolling.ready
    assert rolling.p_value(np.array([0.999]))[0] < 0.05


def test_rolling_calibrator_keeps_a_uniform_sample_of_the_whole_stream() -> None:
    rolling = RollingCalibrator(capacity=1_000, seed=3)
    stream = np.arange(20_000, dtype=np.float64)
    for start in range(0, len(stream), 500):
        rolling.observe(stream[start : start + 500])
    kept = np.array(rolling._scores)
    assert len(kept) == 1_000 and len(set(kept.tolist())) == 1_000
    assert abs(kept.mean() - stream.mean()) < 0.05 * stream.mean()
    assert 0.07 < np.mean(kept >= 18_000) < 0.13  # the last tenth of the stream, a tenth of it
    assert 0.07 < np.mean(kept < 2_000) < 0.13  # and the first tenth


def test_severity_grows_with_rarity() -> None:
    assert severity(0.5, 0.99) is None
    assert [severity(s, 0.99) for s in (0.992, 0.996, 0.9995, 0.99999)] == [
        "low",
        "medium",
        "high",
        "critical",
    ]


def test_cold_start_then_ensemble_find_the_planted_anomalies() -> None:
    events, labels = demo_events()
    half = len(events) // 2
    scorer = AnomalyScorer(threshold=0.995, seed=0)
    warm = scorer.score_batch(events[:half])
    assert {s.model_version for s in warm} == {COLD_START_VERSION}
    assert set(warm[-1].detector_scores) == {"hst", "profile"}  # the profile from its priors
    cold = np.array([s.score for s in warm])
    truth = np.array([label is not None for label in labels[:half]])
    assert roc_auc_score(truth, cold) > 0.8, "cold scores already rank the planted ones high"

    X = np.array([s.features for s in warm])
    scorer.use_model(train_ensemble(X, version="test-1", feature_names=MODEL_FEATURES, seed=0))
    scored = scorer.score_batch(events[half:])
    assert {s.model_version for s in scored} == {"test-1"}
    assert set(scored[0].detector_scores) == {"lof", "ocsvm", "autoencoder", "profile", "hst"}

    truth = np.array([label is not None for label in labels[half:]])
    scores = np.array([s.score for s in scored])
    assert roc_auc_score(truth, scores) > 0.9
    flagged = [s for s in scored if s.is_anomaly]
    assert flagged and all(s.explanation for s in flagged)
    assert all(0.0 <= s.score <= 1.0 for s in scored)


def test_explanations_read_like_a_person_wrote_them() -> None:
    events, _ = demo_events(users=1, months=3)
    scorer = AnomalyScorer(threshold=0.99)
    scorer.score_batch(events)
    last = events[-1]
    spike = last.model_copy(
        update={
            "transaction_id": "spike",
            "amount": last.amount * 12,
            "timestamp": last.timestamp + timedelta(hours=1),
        }
    )
    texts = [r["text"] for r in scorer.score_batch([spike])[0].explanation]
    assert any("× your usual $" in t and t.startswith("$") for t in texts), texts


def test_registry_artifacts_are_verified_before_anything_is_unpickled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pickle

    import pytest

    from services.scorer.registry import (
        SIGNED_PREFIX,
        UntrustedArtifact,
        deserialize,
        serialize,
        sign_artifact,
    )

    events, _ = demo_events(users=2, months=3)
    features = np.array([s.features for s in AnomalyScorer(threshold=0.97).score_batch(events)])
    model = train_ensemble(features, version="v-signed", feature_names=MODEL_FEATURES, seed=0)
    key = b"installation key"
    signed = sign_artifact(serialize(model), key)
    assert deserialize(signed, key).version == "v-signed"

    class Planted:  # what an attacker with write access to the database would store
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (open, (str(tmp_path / "pwned"), "w"))

    payload = pickle.dumps(Planted())
    forged = [
        payload,  # unsigned
        SIGNED_PREFIX + b"\0" * 32 + payload,  # a made-up signature
        sign_artifact(payload, b"another key"),  # signed, but not by this installation
        signed[:-1] + bytes([signed[-1] ^ 1]),  # a real model, one bit changed
    ]
    for artifact in forged:
        with pytest.raises(UntrustedArtifact):
            deserialize(artifact, key)
    assert not (tmp_path / "pwned").exists(), "nothing was unpickled"


def test_transactions_ingested_days_late_are_scored_but_never_alerted() -> None:
    events, _ = demo_events(users=1, months=3)
    scorer = AnomalyScorer(threshold=0.97)
    scorer.score_batch(events)
    last = events[-1]
    spike = last.model_copy(
        update={"transaction_id": "late-spike", "amount": last.amount * 40, "currency": "RON"}
    )
    live = spike.model_copy(update={"ingested_at": spike.timestamp + timedelta(hours=71)})
    late = spike.model_copy(update={"ingested_at": spike.timestamp + timedelta(hours=73)})
    on_time, imported = scorer.score_batch([live]), scorer.score_batch([late])
    assert on_time[0].is_anomaly and imported[0].is_anomaly, "both scored, both unusual"
    assert on_time[0].alerts and not on_time[0].historical
    assert imported[0].historical and not imported[0].alerts
