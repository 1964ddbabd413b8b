"""How a CSV export's columns map to a transaction, and how problems in a file are reported."""

from __future__ import annotations

from dataclasses import dataclass
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
