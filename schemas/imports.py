"""How a CSV export's columns map to a transaction: one model for the import form, the CLI's
options, the bank presets and the parser."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

Column = str | None


def _column(alias: str, description: str) -> Column:
    return Field(None, alias=alias, max_length=128, description=description)


class CsvMapping(BaseModel):
    """Column names as the file prints them (matched case-insensitively). ``None`` means: find
    it (a preset's, or a common name for it), and for ``negative_is_debit`` and ``date_format``:
    tell from the values. A person names columns by the aliases (``date_column``, ...), which are
    the import form's fields and, as ``--date-column``, the CLI's options."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    date: Column = _column("date_column", "The date column. Default: found by name.")
    amount: Column = _column(
        "amount_column",
        "Signed amounts, unless a type column says the direction; or use debit/credit columns.",
    )
    debit: Column = _column(
        "debit_column", "A money-out column (with credit_column, instead of amount_column)."
    )
    credit: Column = _column("credit_column", "A money-in column.")
    description: Column = _column("description_column", "The description column.")
    merchant: Column = _column("merchant_column", "The merchant column.")
    category: Column = _column(
        "category_column", "The bank's category, kept as the provided category."
    )
    transaction_id: Column = _column("id_column", "The bank's transaction id column.")
    type: Column = _column(
        "type_column", "Sale/Return/Payment, Debit/Credit, DBIT/CRDT: the direction."
    )
    currency: Column = _column("currency_column", "A per-row currency column.")
    date_format: str | None = Field(
        None,
        max_length=64,
        description="strptime format, e.g. %d/%m/%Y. Default: detected from the dates.",
    )
    negative_is_debit: bool | None = Field(
        None, description="Which sign is money out. Default: the more common one."
    )
    decimal_comma: bool | None = Field(
        None,
        description="Amounts write the decimal mark as a comma (-1.234,56), or as a point "
        "(-1,234.56). Default: told from the amounts.",
    )
    default_currency: str | None = Field(
        None,
        pattern=r"^[A-Z]{3}$",
        description="A preset's currency for files whose rows do not say.",
    )
    sign_from_type: bool = Field(
        False, description="Amounts are unsigned, and the type column gives the direction."
    )

    # The columns a mapping names, by role.
    ROLES: ClassVar[tuple[str, ...]] = (
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
    # What a person gives; the rest is a preset's or detected.
    OPTIONS: ClassVar[tuple[str, ...]] = (
        *ROLES,
        "date_format",
        "negative_is_debit",
        "decimal_comma",
    )

    def columns(self) -> dict[str, str]:
        """The mapped columns by role."""
        return {role: value for role in self.ROLES if (value := getattr(self, role))}
