"""Column mappings of common bank exports, recognised by their headers.

Each preset names the columns as the bank prints them (matched case-insensitively), its date
format, and its sign convention. A file whose header holds every column of a preset's signature
is read with that preset; ``--preset NAME`` forces one.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.ingest.mapping import CsvMapping


@dataclass(frozen=True)
class Preset:
    name: str
    bank: str
    signature: frozenset[str]  # lower-case headers that identify the export
    mapping: CsvMapping


def _preset(name: str, bank: str, signature: set[str], **mapping: object) -> Preset:
    return Preset(name, bank, frozenset(signature), CsvMapping(**mapping))


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _preset(
            "chase",
            "Chase credit card",
            {"transaction date", "post date", "description", "category", "type", "amount"},
            date="Transaction Date",
            amount="Amount",
            description="Description",
            category="Category",
            type="Type",
            date_format="%m/%d/%Y",
            negative_is_debit=True,
        ),
        _preset(
            "chase-checking",
            "Chase checking",
            {"details", "posting date", "description", "amount", "type", "balance"},
            date="Posting Date",
            amount="Amount",
            description="Description",
            type="Details",
            date_format="%m/%d/%Y",
            negative_is_debit=True,
        ),
        _preset(
            "bofa",
            "Bank of America checking",
            {"date", "description", "amount", "running bal."},
            date="Date",
            amount="Amount",
            description="Description",
            date_format="%m/%d/%Y",
            negative_is_debit=True,
        ),
        _preset(
            "bofa-credit",
            "Bank of America credit card",
            {"posted date", "reference number", "payee", "address", "amount"},
            date="Posted Date",
            amount="Amount",
            description="Payee",
            transaction_id="Reference Number",
            date_format="%m/%d/%Y",
            negative_is_debit=True,
        ),
        _preset(
            "amex",
            "American Express",
            {"date", "description", "amount", "extended details", "appears on your statement as"},
            date="Date",
            amount="Amount",
            description="Description",
            category="Category",
            transaction_id="Reference",
            date_format="%m/%d/%Y",
            negative_is_debit=False,  # charges are positive, payments and credits negative
        ),
        _preset(
            "capital-one",
            "Capital One",
            {"transaction date", "posted date", "card no.", "description", "debit", "credit"},
            date="Transaction Date",
            debit="Debit",
            credit="Credit",
            description="Description",
            category="Category",
            date_format="%Y-%m-%d",
        ),
        _preset(
            "monzo",
            "Monzo",
            {"transaction id", "date", "time", "type", "name", "amount", "currency"},
            date="Date",
            amount="Amount",
            description="Description",
            merchant="Name",
            category="Category",
            transaction_id="Transaction ID",
            currency="Currency",
            date_format="%d/%m/%Y",
            negative_is_debit=True,
        ),
        _preset(
            "revolut",
            "Revolut",
            {"type", "product", "started date", "completed date", "description", "amount", "state"},
            date="Started Date",
            amount="Amount",
            description="Description",
            currency="Currency",
            date_format="%Y-%m-%d %H:%M:%S",
            negative_is_debit=True,
        ),
        _preset(
            "n26",
            "N26",
            {"booking date", "partner name", "type", "payment reference", "amount (eur)"},
            date="Booking Date",
            amount="Amount (EUR)",
            description="Payment Reference",
            merchant="Partner Name",
            default_currency="EUR",
            date_format="%Y-%m-%d",
            negative_is_debit=True,
        ),
        _preset(
            "wise",
            "Wise",
            {"transferwise id", "date", "amount", "currency", "description"},
            date="Date",
            amount="Amount",
            description="Description",
            merchant="Merchant",
            transaction_id="TransferWise ID",
            currency="Currency",
            date_format="%d-%m-%Y",
            negative_is_debit=True,
        ),
    )
}


def recognise(headers: set[str]) -> Preset | None:
    """The preset whose signature the header holds; the most specific when several do."""
    lowered = {h.strip().lower() for h in headers}
    matches = [p for p in PRESETS.values() if p.signature <= lowered]
    return max(matches, key=lambda p: len(p.signature)) if matches else None
