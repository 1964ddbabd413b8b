"""Budgets: the pure arithmetic (spent, projection, status, alerts), and the whole path through
the stack: PUT/GET/DELETE, the summary, the chart, and alerts on budgets.alerts.v1."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from services.analytics.budgets import (
    BudgetAlertKind,
    BudgetStatus,
    ProjectionMethod,
    alert_id,
    alert_kinds,
    budget_line,
    project,
)
from services.core.budgets import ForecastOfMonth, known_through
from tests.polling import poll_until

D = Decimal
NOVEMBER = date(2026, 11, 1)


def forecast(days: range, daily: str, p10: str, p50: str, p90: str) -> ForecastOfMonth:
    return ForecastOfMonth([(date(2026, 11, d), D(daily)) for d in days], D(p10), D(p50), D(p90))


def test_a_finished_month_projects_what_was_spent() -> None:
    got = project(
        NOVEMBER, D("250.00"), date(2026, 11, 30), forecast(range(1, 31), "10", "1", "2", "3")
    )
    assert got == (got.__class__(D("250.00"), D("250.00"), D("250.00"), ProjectionMethod.final))


def test_the_remaining_days_take_their_share_of_the_month_level_interval() -> None:
    # 30 forecast days of 10.00 each; 20 have happened, so a third of the month is ahead.
    month = forecast(range(1, 31), "10.00", "240.00", "300.00", "390.00")
    got = project(NOVEMBER, D("180.00"), date(2026, 11, 20), month)
    assert got.method is ProjectionMethod.forecast
    assert (got.p10, got.p50, got.p90) == (D("260.00"), D("280.00"), D("310.00"))


def test_a_month_not_begun_projects_the_whole_forecast() -> None:
    month = forecast(range(1, 31), "10.00", "240.00", "300.00", "390.00")
    got = project(NOVEMBER, D("0.00"), None, month)
    assert (got.p10, got.p50, got.p90) == (D("240.00"), D("300.00"), D("390.00"))


def test_without_a_forecast_the_pace_carries_to_the_end_of_the_month() -> None:
    got = project(NOVEMBER, D("100.00"), date(2026, 11, 10), None)
    assert got.method is ProjectionMethod.pace
    assert got.p50 == D("300.00")


@pytest.mark.parametrize(
    ("spent", "projected", "status"),
    [
        ("100.00", "300.00", BudgetStatus.on_track),
        ("100.00", "450.00", BudgetStatus.at_risk),
        ("400.00", "400.00", BudgetStatus.on_track),
        ("400.01", "500.00", BudgetStatus.over),
    ],
)
def test_status(spent: str, projected: str, status: BudgetStatus) -> None:
    month = forecast(range(21, 31), "1", "0", D(projected) - D(spent), D(projected) - D(spent))
    line = budget_line("Dining", NOVEMBER, D("400.00"), D(spent), date(2026, 11, 20), month)
    assert line.status is status
    assert line.remaining == D("400.00") - D(spent)


@pytest.mark.parametrize(
    ("spent", "ahead", "kinds"),
    [
        ("100.00", "100.00", []),
        ("100.00", "350.00", [BudgetAlertKind.projected_over]),
        ("320.00", "0.00", [BudgetAlertKind.reached_80]),
        ("320.00", "100.00", [BudgetAlertKind.reached_80, BudgetAlertKind.projected_over]),
        ("400.00", "100.00", [BudgetAlertKind.reached_80, BudgetAlertKind.reached_100]),
    ],
)
def test_alert_kinds(spent: str, ahead: str, kinds: list[BudgetAlertKind]) -> None:
    month = forecast(range(21, 31), "1", ahead, ahead, ahead)
    line = budget_line("Dining", NOVEMBER, D("400.00"), D(spent), date(2026, 11, 20), month)
    assert alert_kinds(line) == kinds


def test_a_pace_projection_raises_no_alert_of_its_own() -> None:
    line = budget_line("Dining", NOVEMBER, D("400.00"), D("200.00"), date(2026, 11, 5), None)
    assert line.status is BudgetStatus.at_risk and alert_kinds(line) == []


def test_alert_ids_are_stable_per_user_category_month_and_kind() -> None:
    first = alert_id("u1", "Dining", NOVEMBER, BudgetAlertKind.reached_80)
    assert first == alert_id("u1", "Dining", date(2026, 11, 1), BudgetAlertKind.reached_80)
    assert first != alert_id("u1", "Dining", NOVEMBER, BudgetAlertKind.reached_100)
    assert first != alert_id("u2", "Dining", NOVEMBER, BudgetAlertKind.reached_80)


@pytest.mark.parametrize(
    ("last_day", "today", "through"),
    [
        (date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 20)),
        (date(2026, 11, 20), date(2026, 12, 5), date(2026, 11, 30)),  # the calendar moved on
        (date(2026, 12, 1), date(2026, 11, 30), date(2026, 11, 30)),  # the user's data moved on
        (date(2026, 10, 31), date(2026, 11, 1), None),  # nothing of November yet
        (None, date(2026, 11, 15), None),
    ],
)
def test_known_through(last_day: date | None, today: date, through: date | None) -> None:
    assert known_through(NOVEMBER, last_day, today) == through


# Through the stack -----------------------------------------------------------------------------


def purchase(i: int, day: int, amount: str, category: str) -> dict[str, Any]:
    return {
        "transaction_id": f"budget-{i}",
        "account_id": "card",
        "timestamp": f"2026-03-{day:02d}T12:00:00-05:00",
        "amount": amount,
        "merchant": f"{category.upper()} PLACE",
        "category": category,
        "channel": "card",
    }


async def budget_alerts(
    bootstrap: str, topic: str, user: str, expect: set[str], within_s: float
) -> list[dict[str, Any]]:
    """The user's budget alerts, read from the topic's start until every kind in ``expect`` is
    there, and then until the topic is quiet: a repeat would show up."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )  # no group: every call reads the topic from its start
    await consumer.start()
    seen: list[dict[str, Any]] = []

    async def read(timeout_ms: int) -> bool:
        batch = await consumer.getmany(timeout_ms=timeout_ms)
        for messages in batch.values():
            for message in messages:
                alert = orjson.loads(message.value or b"{}")
                if alert.get("user_id") == user:
                    seen.append(alert)
        return bool(batch)

    async def expected_kinds() -> bool:
        await read(500)
        return {a["kind"] for a in seen} >= expect

    try:
        await poll_until(expected_kinds, within_s=within_s, every_s=0, what=f"alerts {expect}")
        while await read(3_000):
            pass
    finally:
        await consumer.stop()
    return seen


async def set_budgets(client: httpx.AsyncClient, api: str) -> None:
    """Dining 400.00 a month; Groceries 50.00, and 80.00 in March 2026; bad bodies refused."""
    put = await client.put(f"{api}/v1/budgets/Dining", json={"amount": "400.00"})
    assert put.status_code == 200, put.text
    for bad, field in (
        ({"amount": "-5"}, "amount"),
        ({"amount": "1.234"}, "amount"),
        ({"amount": "10", "month": "2026-13"}, "month"),
        ({"amount": "10", "extra": 1}, "extra"),
    ):
        response = await client.put(f"{api}/v1/budgets/Dining", json=bad)
        assert response.status_code == 422 and field in response.text, (bad, response.text)
    await client.put(f"{api}/v1/budgets/Groceries", json={"amount": "50.00"})
    await client.put(f"{api}/v1/budgets/Groceries", json={"amount": "80.00", "month": "2026-03"})


async def check_budget_views(client: httpx.AsyncClient, api: str) -> None:
    """March (over, with its override), April (nothing spent), the summary and the chart."""
    march = (await client.get(f"{api}/v1/budgets", params={"month": "2026-03"})).json()
    assert march["month"] == "2026-03" and march["known_through"] == "2026-03-31"
    lines = {b["category"]: b for b in march["budgets"]}
    dining, groceries = lines["Dining"], lines["Groceries"]
    assert (D(dining["budget"]), D(dining["spent"]), D(dining["remaining"])) == (
        D("400.00"),
        D("360.00"),
        D("40.00"),
    )
    assert dining["status"] == "on_track" and dining["projected"]["method"] == "final"
    assert dining["spent_share"] == pytest.approx(0.9)
    assert (D(groceries["budget"]), groceries["override"]) == (D("80.00"), True)
    april = (await client.get(f"{api}/v1/budgets", params={"month": "2026-04"})).json()
    assert {b["category"]: D(b["budget"]) for b in april["budgets"]} == {
        "Dining": D("400.00"),
        "Groceries": D("50.00"),
    }
    assert all(D(b["spent"]) == 0 for b in april["budgets"])
    summary = (await client.get(f"{api}/v1/insights/summary", params={"month": "2026-03"})).json()
    assert {b["category"] for b in summary["budgets"]} == {"Dining", "Groceries"}
    chart = (await client.get(f"{api}/v1/charts/budget.json", params={"month": "2026-03"})).json()
    assert sorted(r["category"] for r in chart["datasets"]["lines"]) == ["Dining", "Groceries"]
    png = await client.get(f"{api}/v1/charts/budget.png", params={"month": "2026-03"})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


async def check_alerts(client: httpx.AsyncClient, stack: Any, user: str) -> None:
    """360 of 400 is past 80%; one more dinner is past 100%: each alert once."""
    from services.devstack.stack import service_url

    bootstrap, topic = (
        stack.settings.kafka.bootstrap_or_default,
        stack.settings.topics.budget_alerts,
    )
    alerts = await budget_alerts(bootstrap, topic, user, {"reached_80"}, within_s=30)
    assert [a["kind"] for a in alerts if a["category"] == "Dining"] == ["reached_80"], alerts
    ingest = service_url(stack.settings, "ingest")
    await client.post(f"{ingest}/v1/transactions", json=purchase(50, 28, "45.00", "Dining"))
    alerts = await budget_alerts(bootstrap, topic, user, {"reached_80", "reached_100"}, within_s=60)
    dining_alerts = [a for a in alerts if a["category"] == "Dining"]
    assert sorted(a["kind"] for a in dining_alerts) == ["reached_100", "reached_80"], alerts
    assert len({a["alert_id"] for a in dining_alerts}) == 2
    over = next(a for a in dining_alerts if a["kind"] == "reached_100")
    assert over["month"] == "2026-03" and D(over["spent"]) == D("405.00")
    assert over["status"] == "over" and "Dining" in over["text"]
    # Groceries: 60 of an 80.00 March budget is 75%, no alert
    assert not [a for a in alerts if a["category"] == "Groceries"], alerts
    metrics = await client.get(f"{service_url(stack.settings, 'forecaster')}/metrics")
    assert 'spendstream_budget_alerts_total{kind="reached_100"}' in metrics.text


@pytest.mark.integration
async def test_budgets_through_the_stack(stack, new_user) -> None:  # type: ignore[no-untyped-def]
    from services.devstack.stack import service_url
    from tests.test_pipeline import auth

    user, key = await new_user("budgets")
    api, ingest = service_url(stack.settings, "api"), service_url(stack.settings, "ingest")
    rows = [purchase(i, 2 + i, "45.00", "Dining") for i in range(8)]  # 360.00 of Dining
    rows += [purchase(100 + i, 3 + i, "20.00", "Groceries") for i in range(3)]  # 60.00
    async with httpx.AsyncClient(timeout=60, headers=auth(key)) as client:
        await set_budgets(client, api)
        posted = await client.post(f"{ingest}/v1/transactions", json={"transactions": rows})
        assert posted.status_code == 202

        async def stored() -> bool:
            page = await client.get(f"{api}/v1/transactions", params={"limit": 50})
            return len(page.json()["items"]) == len(rows)

        await poll_until(stored, within_s=60)
        await check_budget_views(client, api)
        await check_alerts(client, stack, user)

        gone = await client.delete(f"{api}/v1/budgets/Groceries", params={"month": "2026-03"})
        assert gone.status_code == 204
        march = (await client.get(f"{api}/v1/budgets", params={"month": "2026-03"})).json()
        assert {b["category"]: D(b["budget"]) for b in march["budgets"]}["Groceries"] == D("50.00")
        assert (await client.delete(f"{api}/v1/budgets/Groceries")).status_code == 204
        assert (await client.delete(f"{api}/v1/budgets/Groceries")).status_code == 404
        march = (await client.get(f"{api}/v1/budgets", params={"month": "2026-03"})).json()
        assert [b["category"] for b in march["budgets"]] == ["Dining"]
