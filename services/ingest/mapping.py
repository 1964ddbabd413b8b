"""How a CSV export's columns map to a transaction, and how problems in a file are reported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from schemas.imports import CsvMapping
from services.core.http import error_entry

__all__ = ["CsvMapping", "ImportErrors", "RowError", "row_fields"]


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
