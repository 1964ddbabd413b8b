"""Transactions as a spreadsheet: CSV streamed a chunk at a time, or an .xlsx workbook with a
summary sheet. Both read the rows through a server-side cursor, so memory stays flat however many
rows there are."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import xlsxwriter

from services.api.rows import as_sent

COLUMNS = (
    "transaction_id",
    "account_id",
    "timestamp",
    "amount",
    "direction",
    "currency",
    "merchant",
    "description",
    "category",
    "category_source",
    "category_confidence",
    "channel",
    "country",
    "source",
    "score",
    "is_anomaly",
    "severity",
    "feedback",
    "note",
    "excluded",
    "revision",
    "status",
    "display_merchant",
)
TEXT_COLUMNS = frozenset(
    {
        "transaction_id",
        "account_id",
        "merchant",
        "description",
        "category",
        "note",
        "display_merchant",
    }
)
# A spreadsheet runs a cell that starts with one of these as a formula: a merchant name from a
# bank feed must not become one (OWASP's CSV injection advice: make it text with a quote).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
XLSX_MAX_ROWS = 1_048_576  # per sheet, the header included


def cell(column: str, row: asyncpg.Record) -> Any:
    if column == "timestamp":
        return as_sent(row["ts"], row["utc_offset_minutes"]).isoformat()
    value = row[column]
    if column in TEXT_COLUMNS and isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    if column == "score" and value is not None:
        return round(float(value), 6)
    return value


def csv_chunk(rows: Iterable[asyncpg.Record], header: bool = False) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if (v := cell(c, row)) is None else v for c in COLUMNS])
    return out.getvalue()


class Workbook:
    """An .xlsx written row by row in xlsxwriter's constant-memory mode: the Summary sheet
    (spending per month, category and currency) first, then the transactions, continued on a
    further sheet past Excel's row limit."""

    def __init__(self, path: str):
        self.book = xlsxwriter.Workbook(
            path, {"constant_memory": True, "strings_to_formulas": False}
        )
        self.summary = self.book.add_worksheet("Summary")
        self.money = self.book.add_format({"num_format": "#,##0.00"})
        self.bold = self.book.add_format({"bold": True})
        self.sheets = 0
        self._new_sheet()
        self.totals: defaultdict[tuple[str, str, str], list[Any]] = defaultdict(
            lambda: [Decimal(0), Decimal(0), 0, 0]
        )

    def _new_sheet(self) -> None:
        self.sheets += 1
        name = "Transactions" if self.sheets == 1 else f"Transactions ({self.sheets})"
        self.sheet = self.book.add_worksheet(name)
        self.sheet.write_row(0, 0, COLUMNS, self.bold)
        self.sheet.freeze_panes(1, 0)
        self.row = 1

    def add(self, rows: Sequence[asyncpg.Record]) -> None:
        for record in rows:
            if self.row >= XLSX_MAX_ROWS:
                self._new_sheet()
            for col, column in enumerate(COLUMNS):
                value = cell(column, record)
                if value is None:
                    continue
                if isinstance(value, Decimal):
                    self.sheet.write_number(self.row, col, float(value), self.money)
                elif isinstance(value, str):
                    self.sheet.write_string(self.row, col, value)
                else:
                    self.sheet.write(self.row, col, value)
            self.row += 1
            self._count(record)

    def _count(self, record: asyncpg.Record) -> None:
        local: date = as_sent(record["ts"], record["utc_offset_minutes"]).date()
        key = (f"{local:%Y-%m}", record["category"] or "Uncategorized", record["currency"])
        total = self.totals[key]
        total[0 if record["direction"] == "debit" else 1] += record["amount"]
        total[2] += 1
        total[3] += bool(record["is_anomaly"])

    def close(self) -> None:
        header = ("month", "category", "currency", "spent", "received", "transactions", "unusual")
        self.summary.write_row(0, 0, header, self.bold)
        self.summary.freeze_panes(1, 0)
        for i, (key, (spent, received, n, unusual)) in enumerate(sorted(self.totals.items()), 1):
            self.summary.write_row(i, 0, key)
            self.summary.write_number(i, 3, float(spent), self.money)
            self.summary.write_number(i, 4, float(received), self.money)
            self.summary.write_number(i, 5, n)
            self.summary.write_number(i, 6, unusual)
        self.summary.set_column(0, 2, 14)
        self.book.close()
