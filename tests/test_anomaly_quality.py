"""Anomaly quality on data Spendstream did not generate, replayed as the scorer serves it.

The card stream is the Fraud Detection Handbook's simulator (``bench/cardsim.py``); the new
account's month is what a person's first statement looks like. Every score here is causal: it
comes from the model serving when the transaction arrived."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from bench.cardsim import simulate
from schemas import TransactionEvent
from services.scorer.confirmed import RISK_FEATURES_V1, Confirmation, ConfirmedFraud
from services.scorer.detectors.profile import (
    PACE_WEIGHT_RANGE,
    PRIOR_TAILS,
    ProfileDetector,
    pace_weights,
    prior_evidence,
)
from services.scorer.ensemble import YOUNG_ACCOUNT_HISTORY, discount_young_accounts, train_ensemble
from services.scorer.evaluation import detection_metrics
from services.scorer.features import FEATURE_NAMES
from services.scorer.model_features import MODEL_FEATURES, detector_view, feature_matrix
from services.scorer.registry import _stale
from services.scorer.replay import account_z_baseline, amount_baseline, last_days_mask, replay
from services.scorer.scoring import COLD_START_VERSION, AnomalyScorer
from services.scorer.supervised import train_supervised

INGESTED = datetime(2027, 1, 1, tzinfo=UTC)


def card_events(seed: int, customers: int = 150, days: int = 45) -> tuple[list, np.ndarray]:
    stream = simulate(customers=customers, terminals=2500, days=days, seed=seed)
    events = [
        TransactionEvent.model_validate(
            {**{k: v for k, v in t.row().items() if k != "is_anomaly"}, "user_id": "bank"}
            | {"ingested_at": INGESTED}
        )
        for t in stream
    ]
    return events, np.array([t.fraud for t in stream])


@pytest.fixture(scope="module")
def card_stream() -> tuple[list, np.ndarray]:
    return card_events(seed=3)


@pytest.mark.slow
def test_beats_the_raw_amount_on_a_third_party_card_stream(
    card_stream: tuple[list, np.ndarray],
) -> None:
    events, labels = card_stream
    result = replay(events, labels)
    model = detection_metrics(labels, result.scores)
    amount = detection_metrics(labels, amount_baseline(events))
    z = detection_metrics(labels, account_z_baseline(events))
    assert model["roc_auc"] > amount["roc_auc"] + 0.03, (model, amount)
    assert model["roc_auc"] > z["roc_auc"] - 0.03, (model, z)
    assert 0.01 < result.flagged.mean() < 0.1, "flags a few percent, not none or everything"
    precision = labels[result.flagged].mean()
    assert precision > 0.5, f"most alerts are fraud (precision {precision:.2f})"


def test_cold_start_scores_mean_something_from_the_first_transaction(
    card_stream: tuple[list, np.ndarray],
) -> None:
    events, labels = card_stream
    first = slice(0, 1000)  # before any model could train
    scored = AnomalyScorer(0.97).score_batch(events[first])
    scores = np.array([s.score for s in scored])
    assert {s.model_version for s in scored} == {COLD_START_VERSION}
    assert len(set(scores[:50].tolist())) > 10, "never a constant, even before any history"
    assert detection_metrics(labels[first], scores)["roc_auc"] > 0.7


def first_month(start: datetime) -> list[TransactionEvent]:
    """A new account's ordinary month: 40 card purchases at well-known merchants, a refund and
    the card's payment."""
    shops = [
        ("Amazon", "Shopping", 20, 90),
        ("Starbucks", "Coffee", 4, 9),
        ("Netflix", "Subscriptions", 15.49, 15.49),
        ("Shell", "Fuel", 30, 65),
        ("Trader Joe's", "Groceries", 35, 120),
        ("Chipotle", "Restaurants", 11, 24),
        ("Uber", "Transport", 9, 35),
        ("CVS", "Pharmacy", 6, 40),
        ("Spotify", "Subscriptions", 10.99, 10.99),
    ]
    rng = np.random.default_rng(5)
    rows = []
    for i in range(40):
        merchant, category, low, high = shops[i % len(shops)]
        when = start + timedelta(days=i * 0.75, hours=float(rng.uniform(8, 21)))
        rows.append((merchant, category, round(float(rng.uniform(low, high)), 2), when, "debit"))
    rows.append(("Amazon", "Shopping", 42.17, start + timedelta(days=20, hours=14), "credit"))
    rows.append(
        ("Card payment", "Transfers", 1480.0, start + timedelta(days=29, hours=9), "credit")
    )
    rows.sort(key=lambda r: r[3])
    return [
        TransactionEvent(
            transaction_id=f"new-{i}",
            account_id="new-card",
            user_id="newcomer",
            timestamp=when,
            amount=Decimal(str(amount)),
            direction=direction,
            merchant=merchant,
            category=category,
            channel="card",
            ingested_at=when + timedelta(minutes=1),
        )
        for i, (merchant, category, amount, when, direction) in enumerate(rows)
    ]


def _assert_quiet(scored: list, label: str) -> None:
    flagged = [s for s in scored if s.is_anomaly]
    assert len(flagged) <= 3, f"{label}: {len(flagged)} of {len(scored)} flagged"
    assert not [s for s in flagged if s.severity in ("high", "critical")], label


@pytest.mark.slow
def test_a_new_accounts_ordinary_month_is_not_an_anomaly(
    card_stream: tuple[list, np.ndarray],
) -> None:
    events, _ = card_stream
    months = {
        code: in_currency(first_month(datetime(2027, 2, 1, tzinfo=UTC)), code, per_dollar)
        for code, per_dollar in (("USD", 1), ("JPY", 150), ("KRW", 1350))
    }
    for code, month in months.items():
        _assert_quiet(AnomalyScorer(0.97).score_batch(month), f"{code}, on a fresh stack")
    served = AnomalyScorer(0.97)
    scored = served.score_batch(events)
    X = np.array([s.features for s in scored])
    served.use_model(train_ensemble(X, version="cards", feature_names=MODEL_FEATURES))
    for code, month in months.items():
        _assert_quiet(served.score_batch(month), f"{code}, with a model trained on dollars")


def in_currency(month: list[TransactionEvent], code: str, per_dollar: int) -> list:
    """The same month for a person who pays in ``code``: a ¥1,200 coffee is an ordinary one."""
    digits = 0 if per_dollar > 1 else 2
    return [
        e.model_copy(
            update={
                "amount": round(e.amount * per_dollar, digits),
                "currency": code,
                "account_id": f"new-card-{code}",
                "transaction_id": f"{e.transaction_id}-{code}",
            }
        )
        for e in month
    ]


@pytest.mark.slow
def test_confirmed_fraud_a_week_late_makes_the_scores_better() -> None:
    """Over the last 30 days of a 75-day stream, once confirmed fraud has trained a model: the
    weeks before it are scored by the unsupervised models in both runs, and a shorter stream
    has too little confirmed fraud to learn much from."""
    events, labels = card_events(seed=3, customers=300, days=75)
    without = replay(events, labels)
    with_feedback = replay(events, labels, feedback_delay=timedelta(days=7))
    last = last_days_mask(events, 30)
    before = detection_metrics(labels[last], without.scores[last])
    after = detection_metrics(labels[last], with_feedback.scores[last])
    assert after["pr_auc"] > before["pr_auc"] + 0.05, (before, after)
    assert after["roc_auc"] > before["roc_auc"] + 0.05, (before, after)
    assert "supervised" in with_feedback.detector_scores
    assert labels[with_feedback.flagged].mean() > 0.7, "alerts stay mostly fraud"


def test_a_supervised_model_serves_only_whom_its_labels_allow() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, len(MODEL_FEATURES)))
    labels = (X[:, 1] > 1.6).astype(int)  # some 5%: enough to learn from
    evidence = np.abs(X[:, 2])
    one_user = train_supervised(X, labels, ["alice"] * 600, evidence)
    assert one_user is not None and one_user.users == frozenset({"alice"})
    probe, probe_evidence = X[labels == 1][:5], evidence[labels == 1][:5]
    assert (one_user.p_values(probe, ["bob"] * 5, probe_evidence) == 1.0).all(), (
        "nothing learned shows to bob"
    )
    assert (one_user.p_values(probe, ["alice"] * 5, probe_evidence) < 0.5).all()

    users = [f"user-{i % 6}" for i in range(600)]
    shared = train_supervised(X, labels, users, evidence)
    assert shared is not None and shared.users is None, "labels from 6 users: serves everyone"
    assert shared.confirmed <= labels.sum()

    loud = ["loud" if label else f"user-{i % 6}" for i, label in enumerate(labels)]
    steered = train_supervised(X, labels, loud, evidence)
    assert steered is None or steered.users == frozenset({"loud"}), (
        "one user's labels alone never train the model everyone is served"
    )
    assert train_supervised(X[:100], np.zeros(100, dtype=int), ["a"] * 100, evidence[:100]) is None


def test_the_supervised_model_learns_how_far_to_trust_the_anchor() -> None:
    """Stacked: when fraud is what the anchor finds unusual, the anchor's evidence is what it
    learns, though no feature of its own says so."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(800, len(MODEL_FEATURES)))
    evidence = rng.exponential(size=800)
    labels = (evidence > 3.0).astype(int)
    model = train_supervised(X, labels.tolist(), [f"user-{i % 6}" for i in range(800)], evidence)
    assert model is not None
    users = ["user-0"] * 800
    fraud_p = model.p_values(X, users, evidence)
    assert detection_metrics(labels, 1 - fraud_p)["roc_auc"] > 0.95


def _ordinary_row() -> np.ndarray:
    row = np.zeros(len(FEATURE_NAMES))
    row[FEATURE_NAMES.index("log_amount")] = np.log1p(20.0)
    row[FEATURE_NAMES.index("hour_share")] = 1.0
    row[FEATURE_NAMES.index("log_seconds_since_previous")] = np.log1p(86400.0)
    return row


@pytest.mark.parametrize("fact", sorted(PRIOR_TAILS))
def test_before_any_model_every_prior_fact_is_evidence(fact: str) -> None:
    """Each fact with a prior tail, far out in its unusual direction, raises the cold score of an
    otherwise ordinary purchase (which has none)."""
    ordinary = _ordinary_row()
    assert prior_evidence(ordinary[None])[0] == 0.0
    unusual = ordinary.copy()
    at, scale = PRIOR_TAILS[fact]
    lower_is_unusual = fact in ("hour_share", "log_seconds_since_previous")
    unusual[FEATURE_NAMES.index(fact)] = -(at + 10 * scale) if lower_is_unusual else at + 10 * scale
    assert prior_evidence(unusual[None])[0] > 3.0, fact


@pytest.mark.parametrize("fitted", [False, True], ids=["before-any-model", "fitted"])
def test_an_accounts_unusual_week_raises_its_ordinary_debits(fitted: bool) -> None:
    """From the third unusual amount in a week (a compromised card's pattern, not a person's big
    week), every debit of the account is more suspicious, up to a cap; money in is not."""
    rows = np.tile(_ordinary_row(), (6, 1))
    rows[:, FEATURE_NAMES.index("recent_unusual_amounts")] = [0, 2, 3, 4, 9, 9]
    rows[5, FEATURE_NAMES.index("is_credit")] = 1.0
    if fitted:
        training = np.tile(_ordinary_row(), (500, 1))
        training[:, FEATURE_NAMES.index("log_amount")] += np.random.default_rng(1).normal(0, 1, 500)
        scores = ProfileDetector().fit(training).score(rows)
    else:
        scores = prior_evidence(rows)
    added = scores - scores[0]
    assert added[1] == 0.0, "two unusual amounts in a week are a person's own"
    assert 0.0 < added[2] < added[3] == added[4], "more evidence per unusual amount, up to a cap"
    assert added[5] == 0.0, "a refund is not a thief's purchase"


def test_a_compromised_cards_week_does_not_teach_the_profile_that_big_amounts_are_common() -> None:
    """A tenth of the training rows are inflated purchases on cards that had others that week.
    The amount's tails are read on the calm accounts' rows, so a card's first inflated purchase
    stands out as far as on a stream without fraud. Where the same big amounts come on calm
    accounts, they are that population's habit and stand out far less."""
    rng = np.random.default_rng(7)
    training = np.tile(_ordinary_row(), (4000, 1))
    z, recent = (
        FEATURE_NAMES.index(n) for n in ("amount_z_account_linear", "recent_unusual_amounts")
    )
    training[:, z] = rng.normal(0.0, 1.0, len(training))
    inflated = rng.random(len(training)) < 0.1
    training[inflated, z] = rng.normal(8.0, 2.0, int(inflated.sum()))
    first_inflated = _ordinary_row()
    first_inflated[z] = 6.0
    training[inflated, recent] = 3.0
    served = ProfileDetector().fit(training).score(first_inflated[None])[0]
    without_fraud = ProfileDetector().fit(training[~inflated]).score(first_inflated[None])[0]
    training[inflated, recent] = 0.0
    a_habit = ProfileDetector().fit(training).score(first_inflated[None])[0]
    assert served == pytest.approx(without_fraud, rel=0.05), (served, without_fraud)
    assert served > a_habit + 3.0, (served, a_habit)


def _paced_rows(daily_rates: np.ndarray, within_hour: np.ndarray) -> np.ndarray:
    rows = np.tile(_ordinary_row(), (len(daily_rates), 1))
    rows[:, FEATURE_NAMES.index("log_daily_rate")] = np.log(daily_rates)
    rows[:, FEATURE_NAMES.index("velocity_1h")] = within_hour
    rows[:, FEATURE_NAMES.index("velocity_24h")] = np.maximum(within_hour, daily_rates.round())
    gaps = np.where(within_hour > 0, 600.0, 86400.0 / daily_rates)
    rows[:, FEATURE_NAMES.index("log_seconds_since_previous")] = np.log1p(gaps)
    return rows


def test_the_profile_reads_an_accounts_pace_against_its_own() -> None:
    """Three purchases within the hour are news on an account that makes one a day and ordinary
    on one that makes thirty: against the population alone, both read the same."""
    rng = np.random.default_rng(4)
    daily = np.where(rng.random(4000) < 0.5, 1.0, 30.0)
    within_hour = rng.poisson(daily / 24)
    profile = ProfileDetector().fit(_paced_rows(daily, within_hour))
    quiet, busy = profile.score(_paced_rows(np.array([1.0, 30.0]), np.array([3.0, 3.0])))
    assert quiet > busy + 3.0, (quiet, busy)
    assert busy < 1.0, "a busy account's usual pace is no evidence"


def _evidence_with_bursts(burst_rows: slice) -> np.ndarray:
    """Facts' evidence on 1,000 training rows: the amount's three facts together on the first
    300, a rare hour on 300 others, and a burst on ``burst_rows``."""
    evidence = np.zeros((1000, len(FEATURE_NAMES)))
    for name in ("log_amount", "amount_robust_z", "amount_z_account_linear"):
        evidence[:300, FEATURE_NAMES.index(name)] = 2.0
    evidence[500:800, FEATURE_NAMES.index("hour_share")] = 1.0
    evidence[burst_rows, FEATURE_NAMES.index("velocity_1h")] = 1.0
    return evidence


@pytest.mark.parametrize(
    ("burst_rows", "counts_more"),
    [(slice(0, 100), True), (slice(850, 950), False)],
    ids=["with-unusual-amounts", "with-nothing-else"],
)
def test_pace_counts_by_what_comes_with_it(burst_rows: slice, counts_more: bool) -> None:
    """Bursts that come with unusual amounts are news where they happen; bursts that come with
    nothing else are a busy account's variety. Learned without labels; the amount's own facts
    always count in full."""
    multipliers = pace_weights(_evidence_with_bursts(burst_rows))
    burst = multipliers[FEATURE_NAMES.index("velocity_1h")]
    assert burst > 1.0 if counts_more else burst == PACE_WEIGHT_RANGE[0], burst
    for name in ("log_amount", "amount_robust_z", "amount_z_account_linear", "hour_share"):
        assert multipliers[FEATURE_NAMES.index(name)] == 1.0, name


def _stored_without(*missing: str) -> list[float]:
    """A row as stored before ``missing`` existed: each account feature's value is its position
    in ``FEATURE_NAMES`` plus one, then the first five confirmed-fraud columns at 9 (the share
    came last)."""
    own = [float(i + 1) for i, name in enumerate(FEATURE_NAMES) if name not in missing]
    return own + [9.0] * len(RISK_FEATURES_V1)


@pytest.mark.parametrize(
    "missing",
    [
        (),
        ("log_daily_rate",),
        ("amount_z_account_linear", "log_daily_rate"),
        ("recent_unusual_amounts", "amount_z_account_linear", "log_daily_rate"),
    ],
)
def test_rows_stored_in_an_older_layout_keep_their_columns(missing: tuple[str, ...]) -> None:
    X = feature_matrix([_stored_without(*missing), [1.0] * len(MODEL_FEATURES)])
    for j, name in enumerate(FEATURE_NAMES):
        assert X[0, j] == (0.0 if name in missing else j + 1), name
    risk = X[0, len(FEATURE_NAMES) :]
    assert (risk[: len(RISK_FEATURES_V1)] == 9.0).all(), "confirmed-fraud columns stay in place"
    assert (risk[len(RISK_FEATURES_V1) :] == 0.0).all(), "stored before the share: none"
    assert (X[1] == 1.0).all()


def test_a_merchants_confirmed_fraud_reads_as_a_share_of_its_owners_trade_there() -> None:
    """A stolen card's purchase at a busy terminal is one confirmed fraud among many honest
    purchases; a skimming terminal's fraud is most of its trade. Only the owner's own trade in
    the past 28 days counts."""
    confirmed = ConfirmedFraud()
    day = 86_400.0
    now = 100 * day
    for n in range(9):
        confirmed.count_transaction("bank", "terminal busy", now - n * day)
    confirmed.count_transaction("bank", "terminal busy", now - 40 * day)  # out of the window
    confirmed.count_transaction("someone else", "terminal busy", now - day)
    for n in range(3):
        confirmed.count_transaction("bank", "terminal skimming", now - n * day)
    frauds = [
        ("terminal busy", now - 2 * day),
        ("terminal skimming", now - day),
        ("terminal skimming", now - 2 * day),
    ]
    for i, (merchant, at) in enumerate(frauds):
        confirmed.confirm(Confirmation("bank", f"card-{i}", merchant, at), f"t{i}")

    def share(merchant: str, user: str = "bank") -> float:
        return confirmed.signals(user, "card-9", merchant, now).merchant_fraud_share

    assert share("terminal busy") == pytest.approx(1 / 9)
    assert share("terminal skimming") == pytest.approx(2 / 3)
    assert share("terminal quiet") == 0.0
    assert share("terminal skimming", user="someone else") == 0.0
    confirmed.set_traffic("bank", "terminal skimming", {int(now // day): 1})
    assert share("terminal skimming") == 1.0, "never more than the trade"


def test_rows_stored_before_the_confirmed_fraud_columns_keep_their_columns() -> None:
    oldest = len(FEATURE_NAMES) - 3
    X = feature_matrix([[2.0] * oldest])
    assert (X[0, :oldest] == 2.0).all()
    assert (X[0, oldest:] == 0.0).all()


@pytest.mark.parametrize(
    ("features", "stale"),
    [(None, True), (list(MODEL_FEATURES), False), (list(MODEL_FEATURES)[:-1], True)],
)
def test_a_model_of_another_feature_layout_is_not_served(
    features: list[str] | None, stale: bool
) -> None:
    assert _stale({"features": features}) is stale


@pytest.mark.parametrize(("credit_share", "judged_by_all"), [(0.0, False), (0.2, True)])
def test_credits_are_judged_by_detectors_that_saw_credits(
    credit_share: float, judged_by_all: bool
) -> None:
    """Density detectors that never saw money coming in find every refund novel: for credits,
    only the profile speaks then. Trained on credits (mule transfers in, refund abuse), they
    keep their say."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(600, len(MODEL_FEATURES)))
    credit = MODEL_FEATURES.index("is_credit")
    X[:, credit] = rng.random(600) < credit_share
    model = train_ensemble(X, version="credits", feature_names=MODEL_FEATURES)
    probe = np.full((1, len(MODEL_FEATURES)), 6.0)
    probe[:, credit] = 1.0
    p_values = model.p_values(probe)
    density = [name for name in p_values if name != "profile"]
    assert density
    forced = [bool(p_values[name][0] == 1.0) for name in density]
    assert not any(forced) if judged_by_all else all(forced), p_values


def test_density_detectors_read_neither_the_accounts_past_week_nor_the_amount_twice() -> None:
    """``recent_unusual_amounts`` is about the account's past week, not this transaction,
    ``amount_z_account_linear`` is ``amount_z_account`` again in dollars, and ``log_daily_rate`` is
    how busy the account is: the profile weighs them, the density detectors never see them."""
    X = np.tile(np.arange(len(MODEL_FEATURES), dtype=float), (3, 1))
    assert detector_view(X, anchor=True).shape[1] == len(FEATURE_NAMES)
    density = detector_view(X, anchor=False)
    read = {FEATURE_NAMES[int(j)] for j in density[0]}
    assert read == set(FEATURE_NAMES) - {
        "recent_unusual_amounts",
        "amount_z_account_linear",
        "log_daily_rate",
    }
    assert detector_view(np.zeros((3, 9)), anchor=False).shape[1] == 9, "other tables as they are"


def test_a_young_accounts_density_evidence_counts_in_proportion_to_its_history() -> None:
    X = np.zeros((3, len(MODEL_FEATURES)))
    history = np.array([0, YOUNG_ACCOUNT_HISTORY / 2, YOUNG_ACCOUNT_HISTORY * 3])
    X[:, FEATURE_NAMES.index("log_history_size")] = np.log1p(history)
    p_values = {name: np.full(3, 1e-6) for name in ("lof", "hst", "profile", "supervised")}
    discount_young_accounts(p_values, X, "profile")
    np.testing.assert_allclose(p_values["lof"], [1.0, 1e-3, 1e-6])
    np.testing.assert_allclose(p_values["hst"], [1.0, 1e-3, 1e-6])
    assert (p_values["profile"] == 1e-6).all() and (p_values["supervised"] == 1e-6).all()

    foreign = {"lof": np.full(3, 1e-6)}
    discount_young_accounts(foreign, X, None)  # another table: no account to be young
    assert (foreign["lof"] == 1e-6).all()
