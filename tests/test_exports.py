"""Exports through the stack: the list's filters, every column, formula-safe text, and an .xlsx
whose summary sheet adds up to its transactions."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from services.api.exports import COLUMNS

pytestmark = pytest.mark.integration


def row(i: int, month: int, amount: str, category: str, **extra: Any) -> dict[str, Any]:
    return {
        "transaction_id": f"export-{i}",
        "account_id": "checking" if i % 2 else "card",
        "timestamp": f"2026-{month:02d}-{10 + i % 15:02d}T09:30:00+02:00",
        "amount": amount,
        "merchant": f"SHOP {i}",
        "category": category,
        "channel": "card",
        **extra,
    }


ROWS = [row(i, 4 + i % 2, f"{10 + i}.50", "Groceries" if i % 3 else "Dining") for i in range(12)]
ROWS += [
    row(20, 5, "99.00", "Dining", merchant='=HYPERLINK("http://evil","x")'),
    row(21, 5, "1200", "Travel", currency="JPY"),
    row(22, 5, "2500.00", "Income", direction="credit", merchant="ACME PAYROLL"),
]


@pytest.mark.integration
async def test_exports_take_the_filters_and_carry_every_column(stack, new_user) -> None:  # type: ignore[no-untyped-def]
    from services.devstack.stack import service_url
    from tests.polling import poll_until
    from tests.test_pipeline import auth

    _, key = await new_user("export")
    api, ingest = service_url(stack.settings, "api"), service_url(stack.settings, "ingest")
    async with httpx.AsyncClient(timeout=60, headers=auth(key)) as client:
        posted = await client.post(f"{ingest}/v1/transactions", json={"transactions": ROWS})
        assert posted.status_code == 202, posted.text

        async def all_scored() -> bool:
            page = (await client.get(f"{api}/v1/transactions", params={"limit": 100})).json()
            return len(page["items"]) == len(ROWS) and all(i["score"] for i in page["items"])

        await poll_until(all_scored, within_s=90)
        response = await client.get(f"{api}/v1/exports/transactions.csv")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        exported = list(csv.DictReader(io.StringIO(response.text)))
        assert tuple(exported[0]) == COLUMNS
        assert sorted(r["transaction_id"] for r in exported) == sorted(
            r["transaction_id"] for r in ROWS
        )
        timestamps = [r["timestamp"] for r in exported]
        assert timestamps == sorted(timestamps), "oldest first"
        by_id = {r["transaction_id"]: r for r in exported}
        sent = {r["transaction_id"]: r for r in ROWS}
        for transaction_id, got in by_id.items():
            assert Decimal(got["amount"]) == Decimal(sent[transaction_id]["amount"])
            assert got["category"] == sent[transaction_id]["category"]
            assert got["source"] == "api" and got["category_source"] == "provided"
            assert 0 <= float(got["score"]) <= 1 and got["is_anomaly"] in ("True", "False")
            assert got["timestamp"].endswith("+02:00"), "in the offset it was sent with"
        assert by_id["export-20"]["merchant"].startswith("'="), "a formula stays text"
        assert by_id["export-21"]["currency"] == "JPY"

        dining = await client.get(
            f"{api}/v1/exports/transactions.csv",
            params={"category": "Dining", "since": "2026-05-01T00:00:00+02:00"},
        )
        dining_rows = list(csv.DictReader(io.StringIO(dining.text)))
        want = {
            r["transaction_id"]
            for r in ROWS
            if r["category"] == "Dining" and r["timestamp"] >= "2026-05-01"
        }
        assert {r["transaction_id"] for r in dining_rows} == want and want
        unknown = await client.get(
            f"{api}/v1/exports/transactions.csv", params={"category": "Nope"}
        )
        assert unknown.status_code == 422 and "category" in unknown.text

        book_response = await client.get(f"{api}/v1/exports/transactions.xlsx")
        assert book_response.status_code == 200
        book = load_workbook(io.BytesIO(book_response.content), read_only=True)
        assert book.sheetnames == ["Summary", "Transactions"]
        sheet = list(book["Transactions"].iter_rows(values_only=True))
        assert sheet[0] == COLUMNS and len(sheet) == len(ROWS) + 1
        assert next(r for r in sheet if r[0] == "export-20")[6].startswith("'=")
        summary = list(book["Summary"].iter_rows(values_only=True))
        assert summary[0][:4] == ("month", "category", "currency", "spent")
        spent = {(m, c, cur): s for m, c, cur, s, *_ in summary[1:]}
        may_dining = sum(
            float(r["amount"])
            for r in ROWS
            if r["category"] == "Dining" and r["timestamp"].startswith("2026-05")
        )
        assert spent[("2026-05", "Dining", "USD")] == pytest.approx(may_dining)
        assert spent[("2026-05", "Travel", "JPY")] == pytest.approx(1200)
        received = {(m, c): r for m, c, _, _, r, *_ in summary[1:]}
        assert received[("2026-05", "Income")] == pytest.approx(2500)
