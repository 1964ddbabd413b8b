"""Currencies: ISO 4217 minor units at the door, the ECB rate file, and totals in each user's base
currency at the rate of each transaction's date, never summed across currencies without one."""

from __future__ import annotations

import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import ValidationError

from schemas import Transaction
from services.core.fx import Rate, RatesError, parse_rates

D = Decimal


@pytest.mark.parametrize(
    ("currency", "amount", "ok"),
    [
        ("JPY", "1200", True),
        ("JPY", "1200.00", True),  # the same amount, written with zeros
        ("JPY", "1200.5", False),
        ("USD", "12.34", True),
        ("USD", "12.345", False),
        ("KWD", "12.345", True),
        ("BHD", "0.001", True),
        ("KWD", "12.3456", False),
    ],
)
def test_amounts_follow_the_currencys_minor_units(currency: str, amount: str, ok: bool) -> None:
    body = {
        "transaction_id": "t",
        "account_id": "a",
        "timestamp": "2026-01-01T00:00:00Z",
        "amount": amount,
        "currency": currency,
    }
    if ok:
        assert Transaction.model_validate(body).amount == D(amount)
        return
    with pytest.raises(ValidationError) as error:
        Transaction.model_validate(body)
    assert error.value.errors()[0]["loc"] == ("amount",)


ECB_HIST = """Date,USD,JPY,BGN,CYP,
2019-02-15,1.1296,124.89,1.9558,N/A,
2019-02-13,1.1271,125.01,1.9558,N/A,
2019-02-12,1.1323,125.34,1.9558,N/A,
"""
ECB_DAILY = """Date, USD, JPY, BGN,
15 February 2019, 1.1296, 124.89, 1.9558,
"""


def test_both_ecb_layouts_parse_as_they_are() -> None:
    rates = list(parse_rates(ECB_HIST))
    assert Rate("USD", date(2019, 2, 15), D("1.1296")) in rates
    assert Rate("JPY", date(2019, 2, 12), D("125.34")) in rates
    assert not [r for r in rates if r.currency == "CYP"], "N/A is no rate"
    assert len(rates) == 9
    assert list(parse_rates(ECB_DAILY)) == [r for r in rates if r.day == date(2019, 2, 15)]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("When,USD\n2019-02-15,1.1\n", "line 1"),
        ("Date,usd\n2019-02-15,1.1\n", "line 1"),
        ("Date,USD\nyesterday,1.1\n", "line 2"),
        ("Date,USD\n2019-02-15,1.1\n2019-02-14,-3\n", "line 3"),
        ("Date,USD\n2019-02-15,one\n", "line 2"),
    ],
)
def test_a_file_that_is_not_a_rate_file_says_where(text: str, where: str) -> None:
    with pytest.raises(RatesError, match=where):
        list(parse_rates(text))


def travel(
    i: int, day: int, amount: str, currency: str, category: str = "Travel"
) -> dict[str, Any]:
    return {
        "transaction_id": f"fx-{i}",
        "account_id": "card",
        "timestamp": f"2019-02-{day:02d}T12:00:00+01:00",
        "amount": amount,
        "currency": currency,
        "merchant": f"PLACE {i}",
        "category": category,
        "channel": "card",
    }


ROWS = [
    travel(1, 12, "50.00", "USD"),
    travel(2, 12, "100.00", "EUR"),
    travel(3, 13, "1000", "JPY"),
    travel(4, 16, "10.00", "EUR", "Dining"),  # a Saturday: Friday's rate
    travel(5, 14, "1.234", "KWD", "Gifts"),  # no rate for KWD at all
]


def check_unconverted(before: dict[str, Any]) -> None:
    assert before["currency"] == "USD" and D(before["total"]) == D("50.00")
    categories = {c["category"]: (D(c["total"]), c["currency"]) for c in before["categories"]}
    assert categories == {
        "Travel": (D("50.00"), "USD"),
        "Travel (EUR)": (D("100.00"), "EUR"),
        "Travel (JPY)": (D("1000"), "JPY"),
        "Dining (EUR)": (D("10.00"), "EUR"),
        "Gifts (KWD)": (D("1.234"), "KWD"),
    }
    assert {u["currency"]: D(u["total"]) for u in before["unconverted"]} == {
        "EUR": D("110.00"),
        "JPY": D("1000"),
        "KWD": D("1.234"),
    }


def import_rates(tmp_path: Path, dsn: str) -> None:
    """``spendstream fx import`` as a user runs it, on the ECB file."""
    from tests.test_cli import SPENDSTREAM, cli_env

    rates = tmp_path / "eurofxref-hist.csv"
    rates.write_text(ECB_HIST)
    done = subprocess.run(
        [*SPENDSTREAM, "fx", "import", str(rates)],
        env=cli_env(SPENDSTREAM_DATABASE_URL=dsn),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "stored 9 rates for 3 currencies" in done.stdout


async def summary(client: httpx.AsyncClient, api: str) -> dict[str, Any]:
    response = await client.get(f"{api}/v1/insights/summary", params={"month": "2019-02"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.integration
async def test_totals_in_the_base_currency_at_each_days_rate(  # type: ignore[no-untyped-def]
    stack, new_user, migrated_dsn: str, tmp_path: Path
) -> None:
    from services.devstack.stack import service_url
    from tests.polling import poll_until
    from tests.test_pipeline import auth

    user, key = await new_user("fx")
    api, ingest = service_url(stack.settings, "api"), service_url(stack.settings, "ingest")
    async with httpx.AsyncClient(timeout=60, headers=auth(key)) as client:
        bad = await client.post(f"{ingest}/v1/transactions", json=travel(9, 12, "10.5", "JPY"))
        assert bad.status_code == 422 and "amount" in bad.text and "JPY" in bad.text
        assert (
            await client.post(f"{ingest}/v1/transactions", json={"transactions": ROWS})
        ).status_code == 202

        async def stored() -> bool:
            page = await client.get(f"{api}/v1/transactions")
            return len(page.json()["items"]) == len(ROWS)

        await poll_until(stored, within_s=60)
        kwd = (await client.get(f"{api}/v1/transactions/fx-5")).json()
        assert D(kwd["amount"]) == D("1.234"), "three decimals kept"

        # No rates yet: each currency on its own, nothing summed across them.
        check_unconverted(await summary(client, api))
        import_rates(tmp_path, migrated_dsn)

        after = await summary(client, api)
        travel_usd = D("50") + D("100") * D("1.1323") + D("1000") * D("1.1271") / D("125.01")
        dining_usd = D("10") * D("1.1296")
        categories = {c["category"]: D(c["total"]) for c in after["categories"]}
        assert categories["Travel"] == travel_usd.quantize(D("0.01"))
        assert categories["Dining"] == dining_usd.quantize(D("0.01"))
        assert D(after["total"]) == categories["Travel"] + categories["Dining"]
        assert [u["currency"] for u in after["unconverted"]] == ["KWD"]
        assert "EUR, JPY, KWD" in after["currency_note"] and "KWD" in after["currency_note"]

        wrong = await client.put(f"{api}/v1/preferences", json={"base_currency": "XYZ"})
        assert wrong.status_code == 422 and "base_currency" in wrong.text
        assert (
            await client.put(f"{api}/v1/preferences", json={"base_currency": "EUR"})
        ).status_code == 200
        in_euro = await summary(client, api)
        travel_eur = D("50") / D("1.1323") + D("100") + D("1000") / D("125.01")
        assert in_euro["currency"] == "EUR"
        totals = {c["category"]: D(c["total"]) for c in in_euro["categories"]}
        assert totals["Travel"] == travel_eur.quantize(D("0.01"))
        assert totals["Dining"] == D("10.00")

        assert (
            await client.put(f"{api}/v1/budgets/Travel", json={"amount": "200.00"})
        ).status_code == 200
        budgets = (await client.get(f"{api}/v1/budgets", params={"month": "2019-02"})).json()
        assert budgets["currency"] == "EUR"
        assert D(budgets["budgets"][0]["spent"]) == totals["Travel"]
        chart = (await client.get(f"{api}/v1/charts/trend.json", params={"weeks": 260})).json()
        assert "spent (EUR)" in str(chart)
        assert (await client.get(f"{api}/v1/forecasts")).json()["currency"] == "EUR"

    conn = await asyncpg.connect(migrated_dsn)
    try:
        series = {
            r["category"]: r["spent"]
            for r in await conn.fetch(
                "SELECT category, sum(spent) AS spent FROM daily_spend WHERE user_id = $1 "
                "GROUP BY 1",
                user,
            )
        }
    finally:
        await conn.close()
    # Counted before any rate was known: each currency kept a series of its own.
    assert series["Travel"] == D("50.00") and series["Travel (JPY)"] == D("1000")
    assert series["Gifts (KWD)"] == D("1.234")
