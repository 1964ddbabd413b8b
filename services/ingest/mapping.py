"""How a CSV export's columns map to a transaction, and how problems in a file are reported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.core.http import error_entry


@dataclass(frozen=True)
class CsvMapping:
    """Column names as the file prints them (matched case-insensitively). ``None`` means: find
    it (a preset's, or a common name for it), and for ``negative_is_debit`` and
    ``date_format``: tell from the values."""

    date: str | None = None
    amount: str | None = None  # signed, unless a type column says the direction
    debit: str | None = None  # or separate money-out and money-in columns, which then win
    credit: str | None = None
    description: str | None = None
    merchant: str | None = None
    category: str | None = None  # the bank's category: kept as the provided category
    transaction_id: str | None = None
    type: str | None = None  # Sale/Return/Payment, Debit/Credit, DBIT/CRDT...
    currency: str | None = None  # a per-row currency column
    default_currency: str | None = None  # the file's currency when no column says
    date_format: str | None = None
    negative_is_debit: bool | None = None
    sign_from_type: bool = False  # unsigned amounts: the type column gives the direction

    def columns(self) -> dict[str, str]:
        """The mapped columns by role."""
        roles = (
            "date",
            "amount",
            "debit",
            "credit",
            "description",
            "merchant",
            "category",
            "transaction_id",
            "type",
            "currency",
        )
        return {role: value for role in roles if (value := getattr(self, role))}


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based line in the file, header included
    column: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        entry = error_entry(("file", self.row, self.column), self.message, "value_error")
        return {**entry, "row": self.row, "column": self.column}


class ImportErrors(Exception):
    def __init__(self, errors: list[RowError]):
        super().__init__(f"{len(errors)} problem(s) in the file")
        self.errors = errors


def row_fields(
    when: datetime, signed: Decimal, *, merchant: str, description: str, **extra: Any
) -> dict[str, Any]:
    """One exported line in the shape every format's parser hands to the importer: ``signed``
    is negative for money out (the importer derives stable ids from it, then drops it), and
    empty texts are left out. ``extra`` adds currency, category or the bank's own id."""
    return {
        "timestamp": when,
        "amount": abs(signed),
        "signed": signed,
        "direction": "debit" if signed < 0 else "credit",
        "merchant": merchant or None,
        "description": description or None,
        "channel": "other",
        **{k: v for k, v in extra.items() if v},
    }
