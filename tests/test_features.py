from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest

from schemas import TransactionEvent
from services.scorer.features import (
    FEATURE_NAMES,
    FeatureExtractor,
    _median,
    _median_absolute_deviation,
)

EST = timezone(timedelta(hours=-5))
START = datetime(2026, 3, 2, 12, 0, tzinfo=EST)


def event(
    i: int, *, minutes: float | None = None, amount: str = "20.00", **extra: object
) -> TransactionEvent:
    fields: dict[str, object] = {
        "transaction_id": f"t{i}",
        "account_id": "acct",
        "user_id": "u",
        "timestamp": START + timedelta(minutes=minutes if minutes is not None else i * 600),
        "amount": Decimal(amount),
        "merchant": "Corner Grocer",
        "category": "Groceries",
        "country": "US",
        "ingested_at": START + timedelta(days=400),
    }
    fields.update(extra)
    return TransactionEvent.model_validate(fields)


def feature(vector: np.ndarray, name: str) -> float:
    return float(vector[FEATURE_NAMES.index(name)])


def test_amount_spike_against_own_category_history() -> None:
    extractor = FeatureExtractor()
    for i in range(30):
        extractor.transform(event(i, amount=f"{20 + i % 5}.00"))
    features, context = extractor.transform(event(99, minutes=99 * 600, amount="180.00"))
    assert feature(features, "amount_robust_z") > 5
    assert context.amount_ratio is not None and context.amount_ratio == pytest.approx(
        180 / 22, rel=0.1
    )


def test_velocity_novelty_and_foreign_country() -> None:
    extractor = FeatureExtractor()
    for i in range(20):
        extractor.transform(event(i))
    base = 20 * 600
    for k in range(4):
        features, context = extractor.transform(
            event(
                100 + k,
                minutes=base + k,
                merchant="Gift Cards Online",
                country="RO",
                currency="RON",
            )
        )
    assert feature(features, "velocity_1h") == 3
    assert context.velocity_1h == 3
    assert feature(features, "foreign_country") == 1 and feature(features, "foreign_currency") == 1
    assert feature(features, "merchant_new") == 0  # the fourth time is no longer new
    first, first_context = FeatureExtractor().transform(event(1))
    assert feature(first, "merchant_new") == 0 and first_context.history_size == 0


def test_local_hour_comes_from_the_timestamp_offset() -> None:
    features, context = FeatureExtractor().transform(
        event(0, minutes=15 * 60)
    )  # 03:00 EST next day
    assert context.local_time.hour == 3
    assert feature(features, "hour_sin") == pytest.approx(np.sin(2 * np.pi * 3 / 24))


def test_duplicates_are_recognised() -> None:
    extractor = FeatureExtractor()
    extractor.transform(event(0, amount="54.10"))
    features, context = extractor.transform(event(1, minutes=3, amount="54.10"))
    assert feature(features, "duplicate_within_24h") == 1 and context.duplicate_of_recent


def test_history_is_bounded() -> None:
    extractor = FeatureExtractor(max_accounts=10)
    for i in range(5000):
        extractor.transform(
            event(i, merchant=f"m{i}", category=f"c{i % 300}", account_id=f"a{i % 20}")
        )
    assert len(extractor) == 10
    # 20 accounts in turn through room for 10: each is evicted before it comes back
    assert extractor.state(("u", "a19")).n == 1
    small = FeatureExtractor(window=32)
    for i in range(1000):
        small.transform(event(i, merchant=f"m{i % 50}", category=f"c{i % 7}"))
    state = small.state(("u", "acct"))
    assert state.n == 32 and sum(state.merchants.values()) == 32
    assert sum(len(s) for s in state.by_merchant.values()) <= 32
    assert sum(state.hours) == 32 and sum(state.categories.values()) == 32


def test_median_absolute_deviation_matches_numpy_with_ties_and_both_parities() -> None:
    rng = np.random.default_rng(5)
    for n in [1, 2, 3, 4, 5, 8, 31, 64, 255, 256] * 20:
        raw = rng.normal(size=n)
        values = sorted(np.where(rng.random(n) < 0.3, np.round(raw, 1), raw).tolist())
        median = _median(values)
        expected = float(np.median(np.abs(np.asarray(values) - median)))
        assert _median_absolute_deviation(values, median) == pytest.approx(expected, abs=1e-12)


def test_the_amount_against_the_accounts_habit_in_dollars() -> None:
    """Amounts spread evenly around a habit ($40 to $60) and one five times the habit: in log the
    spread of small amounts hides part of it, in dollars it stands at its full distance."""
    extractor = FeatureExtractor()
    features, _ = extractor.transform(event(0, amount="50.00"))
    assert feature(features, "amount_z_account_linear") == 0.0, "no history: neutral"
    for i in range(1, 60):
        extractor.transform(event(i, amount=f"{40 + (i * 7) % 21}.00"))
    ordinary, _ = extractor.transform(event(70, minutes=70 * 600, amount="52.00"))
    inflated, _ = extractor.transform(event(71, minutes=71 * 600, amount="250.00"))
    assert abs(feature(ordinary, "amount_z_account_linear")) < 1
    linear = feature(inflated, "amount_z_account_linear")
    assert linear > 8
    assert linear > 2 * feature(inflated, "amount_z_account"), "log scale compresses the tail"


def test_a_young_accounts_dollar_z_leans_on_the_prior_spread() -> None:
    """Five purchases of exactly $20 have no spread of their own: the prior's (the median
    itself) keeps a $30 one from reading as far out."""
    extractor = FeatureExtractor()
    for i in range(5):
        extractor.transform(event(i, amount="20.00"))
    features, _ = extractor.transform(event(9, minutes=9 * 600, amount="30.00"))
    assert feature(features, "amount_z_account_linear") == pytest.approx(
        10 / (20 * (10 / 15) ** 0.5), rel=1e-6
    )


def test_the_daily_rate_is_the_accounts_pace_over_its_window() -> None:
    """One a day until the account has a history; then its transactions a day, from the window's
    first to now."""
    extractor = FeatureExtractor()
    young, _ = extractor.transform(event(0))
    assert feature(young, "log_daily_rate") == 0.0
    for i in range(1, 20):
        extractor.transform(event(i, minutes=i * 180))
    features, _ = extractor.transform(event(20, minutes=20 * 180))
    assert feature(features, "log_daily_rate") == pytest.approx(np.log(20 / (20 * 180 / 1440)))


def test_recent_unusual_amounts_count_the_accounts_large_debits_of_the_past_week() -> None:
    """A compromised card is used for days: the next transactions carry the count."""
    extractor = FeatureExtractor()
    for i in range(30):
        extractor.transform(event(i, amount=f"{20 + i % 5}.00"))
    base = 30 * 600
    features, _ = extractor.transform(event(40, minutes=base, amount="400.00"))
    assert feature(features, "recent_unusual_amounts") == 0, "not the transaction itself"
    extractor.transform(event(41, minutes=base + 60, amount="380.00"))
    extractor.transform(event(42, minutes=base + 90, amount="390.00", direction="credit"))
    features, _ = extractor.transform(event(43, minutes=base + 120, amount="21.00"))
    assert feature(features, "recent_unusual_amounts") == 2, "two debits; a refund is no sign"
    features, _ = extractor.transform(event(44, minutes=base + 8 * 24 * 60, amount="22.00"))
    assert feature(features, "recent_unusual_amounts") == 0, "a week later, forgotten"


def test_replayed_history_rebuilds_the_recent_unusual_amounts() -> None:
    live, rebuilt = FeatureExtractor(), FeatureExtractor()
    history = [event(i, amount=f"{20 + i % 5}.00") for i in range(30)]
    history.append(event(40, minutes=30 * 600, amount="400.00"))
    for past in history:
        live.transform(past)
        rebuilt.learn(past)
    probe = event(50, minutes=30 * 600 + 60, amount="20.00")
    assert feature(live.transform(probe)[0], "recent_unusual_amounts") == 1
    assert feature(rebuilt.transform(probe)[0], "recent_unusual_amounts") == 1


def test_amounts_are_compared_at_a_dollars_scale_and_explained_in_their_own_currency() -> None:
    """A yen account's habits read as a dollar account's 150 times smaller amounts do: a ¥3,000
    lunch is not a $3,000 one to a model that learned from everyone. What a person reads stays
    in yen."""
    rows = {}
    for currency, per_dollar in (("USD", 1), ("JPY", 150)):
        extractor = FeatureExtractor()
        for i in range(30):
            amount = (20 + i % 5) * per_dollar
            extractor.transform(event(i, amount=f"{amount}", currency=currency))
        big = 180 * per_dollar
        rows[currency] = extractor.transform(
            event(99, minutes=99 * 600, amount=f"{big}", currency=currency)
        )
    (dollars, in_dollars), (yen, in_yen) = rows["USD"], rows["JPY"]
    np.testing.assert_allclose(yen, dollars, rtol=1e-9, atol=1e-9)
    assert in_yen.amount == 27_000 and in_yen.currency == "JPY"
    assert in_yen.usual_amount == pytest.approx(150 * (in_dollars.usual_amount or 0))
    assert in_yen.amount_ratio == pytest.approx(in_dollars.amount_ratio)
