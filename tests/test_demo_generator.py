from collections import Counter
from datetime import date, datetime

from schemas import Transaction
from services.demo.generator import ANOMALY_KINDS, generate
from services.demo.merchants import RENT

END = date(2026, 10, 1)


def test_same_seed_same_data_and_another_seed_differs() -> None:
    assert generate(2, 3, seed=11, end=END) == generate(2, 3, seed=11, end=END)
    assert generate(2, 3, seed=11, end=END) != generate(2, 3, seed=12, end=END)


def test_every_record_is_a_valid_transaction_with_a_unique_id() -> None:
    records = generate(3, 4, seed=5, end=END)
    for r in records:
        Transaction.model_validate(r.transaction)
    ids = [(r.user_id, r.transaction["transaction_id"]) for r in records]
    assert len(ids) == len(set(ids))


def test_histories_look_like_personal_finance() -> None:
    records = generate(2, 6, seed=3, end=END)
    user = [r.transaction for r in records if r.user_id == "demo-0001"]
    by_category = Counter(t.get("category") for t in user)
    # salary twice a month, rent monthly, subscriptions, daily spending, and some uncategorized
    assert by_category["Income"] == 12
    rent_lines = {raw for merchant in RENT for raw in merchant.raw}
    assert sum(t["merchant"] in rent_lines for t in user) == 6  # categorized or not
    assert by_category["Subscriptions"] >= 12
    assert by_category["Groceries"] > 30 and by_category["Dining"] > 60
    assert 0.03 < by_category[None] / len(user) < 0.15
    refunds = [t for t in user if t["direction"] == "credit" and t.get("category") != "Income"]
    assert refunds, "some purchases are refunded"
    weekend_groceries = sum(
        datetime.fromisoformat(t["timestamp"]).weekday() >= 5
        for t in user
        if t.get("category") == "Groceries"
    )
    assert weekend_groceries / by_category["Groceries"] > 2 / 7, "groceries peak at weekends"


def test_labelled_anomalies_of_every_kind() -> None:
    records = generate(3, 6, seed=9, end=END)
    kinds = Counter(r.anomaly for r in records if r.anomaly)
    assert set(kinds) == set(ANOMALY_KINDS)
    foreign = [r.transaction for r in records if r.anomaly == "foreign_country"]
    assert all(t["country"] != "US" for t in foreign)
    odd = [r.transaction for r in records if r.anomaly == "new_merchant_odd_hour"]
    assert all(1 <= datetime.fromisoformat(t["timestamp"]).hour <= 4 for t in odd)


def test_the_demo_plants_a_drift_the_watcher_detects() -> None:
    """Every persona takes up a gym habit three weeks before the end: the week after it starts,
    against the four weeks before, the card's category mix has drifted, led by Fitness."""
    from datetime import datetime, timedelta

    from services.demo.generator import HABIT_DAYS
    from services.scorer.drift import WindowData, compare_windows

    end = date(2026, 11, 1)
    records = generate(users=3, months=6, seed=7, end=end)
    habit = end - timedelta(days=HABIT_DAYS)
    cut = habit + timedelta(days=7)
    detected = 0
    for user in sorted({r.user_id for r in records}):
        rows = [
            (datetime.fromisoformat(r.transaction["timestamp"]).date(), r.transaction)
            for r in records
            if r.user_id == user and r.transaction["account_id"] == "credit-card"
        ]

        def window(first: date, last: date) -> WindowData:
            return WindowData.from_transactions(
                [
                    (tx.get("category") or "Uncategorized", float(tx["amount"]))
                    for day, tx in rows  # noqa: B023
                    if first <= day < last
                ]
            )

        result = compare_windows(
            window(habit, cut),
            window(habit - timedelta(days=28), habit),
            threshold=0.1,
            min_events=30,
        )
        if result.status == "drift":
            detected += 1
            assert "category_jsd" in result.breached
            assert "Fitness" in [c["category"] for c in result.top_contributors[:3]]
    assert detected >= 2, "most personas' drift is detected"


def test_the_demo_user_gets_budgets_near_their_average_month() -> None:
    from services.demo.loader import demo_budgets

    records = generate(users=1, months=6, seed=7, end=date(2026, 12, 1))
    budgets = demo_budgets(records, "demo-0001")
    assert len(budgets) == 4
    assert not {"Rent", "Income", "Transfers"} & set(budgets)
    categories = {r.transaction.get("category") for r in records}
    assert set(budgets) <= categories
    assert all(0 < float(amount) < 2_000 for amount in budgets.values())
