"""QIF (Quicken Interchange Format) exports, read with quiffen. QIF dates carry no format:
whether 03/04/2026 is March or April is decided from the file's own dates, and refused when the
file cannot tell."""

from __future__ import annotations

import re
import tempfile
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.ingest.mapping import ImportErrors, RowError, row_fields

_DATE_LINE = re.compile(r"^D\s*(\d{1,2})\s*[/.\-]\s*(\d{1,2})", re.M)


def is_qif(filename: str, text: str) -> bool:
    return filename.lower().endswith(".qif") or text.lstrip("\ufeff").lstrip().startswith("!Type:")


def day_first(text: str, date_format: str | None) -> bool:
    """From ``date_format`` when given; else a first number above 12 means day-first, a second
    above 12 month-first. A file where every date reads both ways is refused."""
    if date_format:
        return date_format.lstrip().startswith("%d")
    pairs = [(int(a), int(b)) for a, b in _DATE_LINE.findall(text)]
    if any(a > 12 for a, _ in pairs):
        return True
    if any(b > 12 for _, b in pairs) or not pairs:
        return False
    raise ImportErrors(
        [
            RowError(
                1,
                "D",
                "every date reads as both day-first and month-first; pass the format: "
                "--date-format %d/%m/%Y or %m/%d/%Y",
            )
        ]
    )


def qif_rows(text: str, date_format: str | None) -> list[tuple[int, dict[str, Any]]]:
    """The transactions of every account in the file, as (ordinal, fields) in the shape the
    importer builds transactions from."""
    import quiffen

    first = day_first(text, date_format)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.qif"
        path.write_text(text, encoding="utf-8")
        try:
            parsed = quiffen.Qif.parse(path, day_first=first)
        except Exception as exc:  # quiffen raises many kinds on a malformed file
            raise ImportErrors([RowError(1, "file", f"not readable as QIF: {exc}")]) from None
    rows: list[tuple[int, dict[str, Any]]] = []
    for account in parsed.accounts.values():
        for transactions in account.transactions.values():
            for transaction in transactions:
                rows.append((len(rows) + 1, _fields(transaction)))
    return [row for row in rows if row[1]["signed"] != 0]


def _fields(transaction: Any) -> dict[str, Any]:
    signed = Decimal(str(transaction.amount))
    payee = (transaction.payee or "").strip()
    memo = (transaction.memo or "").strip()
    category = transaction.category.name if transaction.category is not None else None
    return row_fields(
        transaction.date.replace(tzinfo=UTC),  # QIF dates are dates
        signed,
        merchant=payee or memo,
        description=memo or payee,
        category=category,
    )
