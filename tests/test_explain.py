"""One test per kind of reason: each says what happened in the person's own terms."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.core.money import format_money
from services.scorer.confirmed import NO_SIGNALS, FraudSignals
from services.scorer.explain import explain
from services.scorer.features import FeatureContext

ORDINARY = FeatureContext(
    category="Groceries",
    amount=45.0,
    amount_basis="Groceries",
    usual_amount=44.0,
    amount_ratio=45 / 44,
    merchant="corner grocer",
    merchant_new=False,
    local_time=datetime(2026, 5, 4, 18, 30, tzinfo=UTC),
    hour_share=0.3,
    velocity_1h=0,
    velocity_24h=1,
    duplicate_of_recent=False,
    country="US",
    home_country="US",
    currency="USD",
    home_currency="USD",
    history_size=200,
)


def texts(context: FeatureContext, signals: FraudSignals = NO_SIGNALS, **kw: bool) -> list[str]:
    return [r["text"] for r in explain(context, {"profile": 0.5}, signals=signals, **kw)]


def test_nothing_stands_out_in_an_ordinary_purchase() -> None:
    assert texts(ORDINARY) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"amount": 412.0, "usual_amount": 45.0, "amount_ratio": 412 / 45},
            "$412.00 at Groceries is 9.2× your usual $45.00",
        ),
        (
            {"amount": 1500.0, "usual_amount": 45.0, "amount_ratio": 1500 / 45},
            "$1,500.00 at Groceries is 33× your usual $45.00",
        ),
        ({"merchant_new": True}, "first time at this merchant"),
        (
            {"local_time": datetime(2026, 5, 5, 3, 12, tzinfo=UTC), "hour_share": 0.01},
            "03:12, you rarely spend at night",
        ),
        ({"velocity_1h": 3}, "4 purchases within an hour"),
        (
            {"velocity_24h": 3, "daily_rate": 0.3},
            "4 transactions in a day; you usually make about 2 a week",
        ),
        (
            {"duplicate_of_recent": True},
            "$45.00 at the same merchant again within a day: a possible duplicate charge",
        ),
        ({"country": "RO"}, "in RO, outside your usual US"),
        ({"currency": "RON"}, "charged in RON, not your usual USD"),
        ({"recent_unusual": 3}, "this account had 3 unusual amounts in the past week"),
    ],
    ids=[
        "amount",
        "amount-tenfold",
        "new-merchant",
        "rare-hour",
        "burst",
        "busy-day",
        "duplicate",
        "abroad",
        "currency",
        "unusual-week",
    ],
)
def test_each_reason_reads_as_what_happened(change: dict, expected: str) -> None:
    assert texts(replace(ORDINARY, **change)) == [expected]


@pytest.mark.parametrize(
    ("signals", "expected"),
    [
        (
            FraudSignals(1, 0, 0, 6.0),
            "fraud was confirmed at this merchant once on your accounts in the past 4 weeks",
        ),
        (
            FraudSignals(0, 7, 0),
            "other customers confirmed fraud at this merchant in the past 4 weeks",
        ),
        (
            FraudSignals(0, 0, 2, account_days_since=3.0),
            "fraud was confirmed on this account 2 times in 2 weeks",
        ),
    ],
    ids=["own-merchant", "shared-merchant", "account"],
)
def test_confirmed_fraud_is_a_reason(signals: FraudSignals, expected: str) -> None:
    assert texts(ORDINARY, signals) == [expected]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"velocity_24h": 1, "daily_rate": 0.1}, []),  # two in a day: under the floor
        ({"velocity_24h": 5, "daily_rate": 2.5}, []),  # six on an account that makes 2.5
        ({"velocity_24h": 5, "daily_rate": 0.3, "history_size": 5}, []),  # no habit yet
        (
            {"velocity_24h": 3, "daily_rate": 0.01},
            ["4 transactions in a day; you usually make about 1 a month"],
        ),
        (
            {"velocity_24h": 9, "daily_rate": 2.0},
            ["10 transactions in a day; you usually make about 2 a day"],
        ),
    ],
)
def test_a_busy_day_is_read_against_the_accounts_own_pace(
    change: dict, expected: list[str]
) -> None:
    assert texts(replace(ORDINARY, **change)) == expected


def test_a_persons_own_big_week_is_no_reason() -> None:
    """Two unusual amounts in a week are a sofa and its delivery: not said, and not counted."""
    assert texts(replace(ORDINARY, recent_unusual=2)) == []


def test_a_flagged_transaction_always_has_a_reason() -> None:
    assert texts(ORDINARY) == []
    [fallback] = texts(ORDINARY, flagged=True)
    assert "unusual combination" in fallback and "profile" in fallback


def test_reasons_come_strongest_first() -> None:
    both = replace(ORDINARY, merchant_new=True, duplicate_of_recent=True)
    assert texts(both)[0].endswith("a possible duplicate charge")


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (412, "USD", "$412.00"),
        (1200, "JPY", "¥1,200"),
        (12.5, "KWD", "12.500 KWD"),
        (9.5, "EUR", "€9.50"),
        (30, "RON", "30.00 RON"),
    ],
)
def test_money_reads_in_its_currencys_minor_units(amount: float, currency: str, shown: str) -> None:
    assert format_money(amount, currency) == shown
