"""Dated exchange rates: read from a CSV in the European Central Bank's reference-rate layout, and
stored. Nothing is fetched at run time: an installation imports the rates it wants.

The ECB publishes units of each currency per euro, one row per business day:

    Date,USD,JPY,BGN,...                   (eurofxref-hist.csv: ISO dates, trailing comma)
    2026-11-27,1.0421,162.35,1.9558,...
    Date, USD, JPY, ...                    (eurofxref.csv: the latest day)
    27 November 2026, 1.0421, 162.35, ...

Both work as they are. A cell of ``N/A`` or nothing means no rate that day.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

import asyncpg

DATE_FORMATS = ("%Y-%m-%d", "%d %B %Y", "%d %b %Y")


class RatesError(ValueError):
    """The file is not a reference-rate CSV; the message says where and why."""


@dataclass(frozen=True)
class Rate:
    currency: str
    day: date
    per_eur: Decimal


def _day(text: str, line: int) -> date:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    raise RatesError(f"line {line}: {text!r} is not a date (expected e.g. 2026-11-27)")


def parse_rates(text: str) -> Iterator[Rate]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [cell.strip() for cell in next(reader, [])]
    if not header or header[0].lower() != "date":
        raise RatesError("line 1: the first column must be Date, followed by currency codes")
    currencies = header[1:]
    for code in filter(None, currencies):
        if len(code) != 3 or not code.isalpha() or not code.isupper():
            raise RatesError(f"line 1: {code!r} is not an ISO 4217 currency code")
    for line, row in enumerate(reader, start=2):
        if not row or not row[0].strip():
            continue
        day = _day(row[0], line)
        for code, cell in zip(currencies, row[1:], strict=False):
            value = cell.strip()
            if not code or value in ("", "N/A", "-"):
                continue
            try:
                rate = Decimal(value)
            except InvalidOperation:
                raise RatesError(f"line {line}: {code} rate {value!r} is not a number") from None
            if not rate.is_finite() or rate <= 0:
                raise RatesError(f"line {line}: {code} rate must be a positive number")
            yield Rate(code, day, rate)


_UPSERT = """
INSERT INTO fx_rates (currency, day, per_eur)
SELECT * FROM unnest($1::text[], $2::date[], $3::numeric[])
ON CONFLICT (currency, day) DO UPDATE SET per_eur = excluded.per_eur
"""


async def store_rates(conn: asyncpg.Connection, rates: list[Rate]) -> None:
    """Insert or replace the rates, in one statement."""
    await conn.execute(
        _UPSERT,
        [r.currency for r in rates],
        [r.day for r in rates],
        [r.per_eur for r in rates],
    )
