"""Reading a bank's CSV without hand-mapping: its columns by preset or by common names, its date
format from the dates themselves (refusing to guess between day-first and month-first), and its
sign convention. Pure: the parser calls it with the header and the records."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.core.text import fold_accents
from services.ingest.amounts import file_decimal_mark, parse_amount
from services.ingest.mapping import CsvMapping, ImportErrors, RowError
from services.ingest.presets import PRESETS, Preset, recognise

DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%d.%m.%Y",
    "%d.%m.%y",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%Y/%m/%d",
    "%m/%d/%y",
    "%d/%m/%y",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d, %Y",
    "%Y%m%d",
)
SAMPLE_ROWS = 500

# Common header names per role, most specific first; matched after lower-casing and trimming.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "date": (
        "transaction date",
        "trans date",
        "trans. date",
        "date",
        "booking date",
        "buchungstag",
        "posted date",
        "posting date",
        "post date",
        "completed date",
        "started date",
        "value date",
        "valuta",
        "datum",
        "buchungsdatum",
        "dateop",
        "date opération",
        "date de l'opération",
        "fecha",
        "fecha operación",
        "data",
        "data operazione",
        "data operacji",
        "transactiedatum",
        "boekingsdatum",
        "дата",
        "дата операции",
    ),
    "amount": (
        "amount",
        "transaction amount",
        "amount (eur)",
        "amount (gbp)",
        "amount (usd)",
        "betrag",
        "betrag (eur)",
        "value",
        "montant",
        "montant (eur)",
        "importe",
        "importo",
        "bedrag",
        "bedrag (eur)",
        "kwota",
        "beløb",
        "belopp",
        "umsatz",
        "сумма",
        "сумма операции",
    ),
    "debit": (
        "debit",
        "debit amount",
        "withdrawal",
        "withdrawals",
        "paid out",
        "money out",
        "soll",
        "débit",
        "cargo",
        "uscite",
    ),
    "credit": (
        "credit",
        "credit amount",
        "deposit",
        "deposits",
        "paid in",
        "money in",
        "haben",
        "crédit",
        "abono",
        "entrate",
    ),
    "description": (
        "description",
        "transaction description",
        "details",
        "payee",
        "name",
        "memo",
        "narrative",
        "payment reference",
        "verwendungszweck",
        "libellé",
        "libellé de l'opération",
        "concepto",
        "descripción",
        "descrizione",
        "causale",
        "omschrijving",
        "mededelingen",
        "tytuł",
        "opis",
        "описание",
        "назначение платежа",
        "label",
    ),
    "merchant": (
        "merchant",
        "merchant name",
        "partner name",
        "counterparty",
        "beneficiary",
        "begünstigter/zahlungspflichtiger",
        "beguenstigter/zahlungspflichtiger",
        "name zahlungsbeteiligter",
        "zahlungsempfänger",
        "empfänger",
        "auftraggeber/empfänger",
        "bénéficiaire",
        "beneficiario",
        "naam / omschrijving",
        "kontrahent",
        "получатель",
        "контрагент",
    ),
    "category": (
        "category",
        "categories",
        "kategorie",
        "catégorie",
        "categoría",
        "categoria",
        "categorie",
        "kategoria",
        "категория",
    ),
    "transaction_id": ("transaction id", "transaction reference", "reference number", "id"),
    "type": (
        "type",
        "transaction type",
        "credit/debit",
        "debit/credit",
        "dr/cr",
        "cr/dr",
        "af bij",  # ING Netherlands: Af (out) or Bij (in)
    ),
    "currency": (
        "currency",
        "währung",
        "waehrung",
        "devise",
        "moneda",
        "divisa",
        "waluta",
        "валюта",
        "валюта операции",
    ),
}

# Type values that mean money in; any other known value means money out.
CREDIT_TYPES = frozenset(
    {
        "credit",
        "cr",
        "crdt",
        "return",
        "refund",
        "payment",  # on a card statement: paying the card off
        "deposit",
        "incoming",
        "income",
        "money in",
        "topup",
        "top-up",
        "interest",
        "reversal",
        "bij",
    }
)
DEBIT_TYPES = frozenset(
    {
        "debit",
        "dr",
        "dbit",
        "sale",
        "purchase",
        "withdrawal",
        "fee",
        "card payment",
        "card_payment",
        "direct debit",
        "outgoing",
        "money out",
        "atm",
        "transfer",
        "af",
    }
)


@dataclass
class Detected:
    """A mapping with the file's own column names, and what was decided and why."""

    mapping: CsvMapping
    preset: Preset | None = None
    notes: list[str] = field(default_factory=list)


def header_key(name: str) -> str:
    """A header name as compared: lower case, accents off as merchant names lose them, spaces
    single ("Währung" is "wahrung", as is "Waehrung" once its spelling is listed)."""
    return re.sub(r"\s+", " ", fold_accents(name.strip().strip('"')).lower())


def _lookup(columns: Sequence[str]) -> dict[str, str]:
    return {header_key(c): c for c in columns}


# The synonyms as compared.
_SYNONYM_KEYS = {role: tuple(map(header_key, names)) for role, names in SYNONYMS.items()}
DATE_HEADERS = frozenset(_SYNONYM_KEYS["date"])


def resolve(
    columns: Sequence[str],
    records: Sequence[dict[str, Any]],
    given: CsvMapping,
    preset_name: str | None = None,
) -> Detected:
    """Fill in what ``given`` leaves open: a named or recognised preset first, then common
    names. Explicit names win and must exist; every name comes back as the file spells it."""
    by_key = _lookup(columns)
    if preset_name is not None and preset_name not in PRESETS:
        known = ", ".join(sorted(PRESETS))
        raise ImportErrors([RowError(1, "preset", f"no preset {preset_name!r}; known: {known}")])
    preset = PRESETS[preset_name] if preset_name else recognise(set(columns))
    notes = [f"recognised the {preset.bank} export (preset {preset.name})"] if preset else []
    explicit = {
        k: v for k, v in given.model_dump().items() if v is not None and k != "sign_from_type"
    }
    base = preset.mapping if preset else CsvMapping()
    mapping = base.model_copy(update=explicit)
    mapping = _spelled_as_in_file(mapping, by_key, set(explicit))
    if preset is None:
        mapping = _by_common_names(mapping, by_key, records, notes)
    _require(mapping, columns)
    mapping = _currency_in_header(mapping, notes)
    mapping = _date_format(mapping, records, notes)
    mapping = _decimal_mark(mapping, records, notes)
    mapping = _sign_convention(mapping, records, notes)
    return Detected(mapping, preset, notes)


def _spelled_as_in_file(
    mapping: CsvMapping, by_key: dict[str, str], explicit: set[str]
) -> CsvMapping:
    changes: dict[str, Any] = {}
    missing = []
    for role, name in mapping.columns().items():
        actual = by_key.get(header_key(name))
        if actual is None and role in explicit:
            missing.append(name)
        changes[role] = actual  # a preset's optional column the file lacks: unmapped
    if missing:
        have = ", ".join(sorted(by_key.values()))
        raise ImportErrors(
            [RowError(1, name, f"no such column; the file has {have}") for name in missing]
        )
    return mapping.model_copy(update=changes)


def _by_common_names(
    mapping: CsvMapping,
    by_key: dict[str, str],
    records: Sequence[dict[str, Any]],
    notes: list[str],
) -> CsvMapping:
    taken = set(mapping.columns().values())
    found: dict[str, Any] = {}

    def first(role: str) -> str | None:
        for name in _SYNONYM_KEYS[role]:
            column = by_key.get(name)
            if column is not None and column not in taken:
                return column
        return None

    # The type column first: "Details" is a type on some exports and a description on others.
    if mapping.type is None and (column := first("type")) and _looks_like_type(records, column):
        found["type"] = column
        taken.add(column)
    for role in ("date", "debit", "credit", "amount", "description", "merchant"):
        if getattr(mapping, role) is None and (column := first(role)):
            found[role] = column
            taken.add(column)
    for role in ("category", "transaction_id", "currency"):
        if getattr(mapping, role) is None and (column := first(role)):
            found[role] = column
            taken.add(column)
    if ("debit" in found and "credit" not in found) or ("credit" in found and "debit" not in found):
        found.pop("debit", None), found.pop("credit", None)  # one half of a pair is not one
    if found:
        described = ", ".join(f"{role} = {column!r}" for role, column in found.items())
        notes.append(f"matched columns by name: {described}")
    return mapping.model_copy(update=found)


def _looks_like_type(records: Sequence[dict[str, Any]], column: str) -> bool:
    values = [str(r.get(column) or "").strip().lower() for r in records[:SAMPLE_ROWS]]
    values = [v for v in values if v]
    known = sum(v in CREDIT_TYPES or v in DEBIT_TYPES for v in values)
    return bool(values) and known >= 0.8 * len(values)


def _require(mapping: CsvMapping, columns: Sequence[str]) -> None:
    have = ", ".join(columns)
    errors = []
    if mapping.date is None:
        errors.append(RowError(1, "date", f"no date column found; the file has {have}"))
    if mapping.amount is None and not (mapping.debit and mapping.credit):
        errors.append(
            RowError(
                1, "amount", f"no amount (or debit and credit) column found; the file has {have}"
            )
        )
    if errors:
        raise ImportErrors(errors)


def _date_format(
    mapping: CsvMapping, records: Sequence[dict[str, Any]], notes: list[str]
) -> CsvMapping:
    """The one format every sampled date reads in. Day-first and month-first both reading
    every date (no day above 12) would be a guess: refused, with the two to choose from."""
    if mapping.date_format is not None or mapping.date is None:
        return mapping
    values = [str(r.get(mapping.date) or "").strip() for r in records[:SAMPLE_ROWS]]
    values = [v for v in values if v]
    if not values:
        return mapping
    readings: dict[str, list[datetime]] = {}
    for fmt in DATE_FORMATS:
        try:
            readings[fmt] = [datetime.strptime(v, fmt) for v in values]
        except ValueError:
            continue
    distinct = {tuple(parsed): fmt for fmt, parsed in reversed(list(readings.items()))}
    if len(distinct) > 1:
        formats = " or ".join(sorted(distinct.values()))
        raise ImportErrors(
            [
                RowError(
                    1,
                    mapping.date,
                    f"dates such as {values[0]!r} read as both day-first and month-first; "
                    f"pass the format: --date-format {formats}",
                )
            ]
        )
    if distinct:
        fmt = next(iter(distinct.values()))
        notes.append(f"dates read as {fmt}")
        return mapping.model_copy(update={"date_format": fmt})
    return mapping  # none fits every row: each row is tried, and bad ones are reported


_HEADER_CURRENCY = re.compile(r"\(([A-Za-z]{3})\)\s*$")


def _currency_in_header(mapping: CsvMapping, notes: list[str]) -> CsvMapping:
    """A file without a currency column whose amount header names one ("Bedrag (EUR)") is in
    it, unless a preset says otherwise."""
    header = mapping.amount or mapping.debit
    if mapping.currency or mapping.default_currency or header is None:
        return mapping
    named = _HEADER_CURRENCY.search(header)
    if named is None:
        return mapping
    code = named.group(1).upper()
    notes.append(f"amounts in {code}, as {header!r} says")
    return mapping.model_copy(update={"default_currency": code})


def _decimal_mark(
    mapping: CsvMapping, records: Sequence[dict[str, Any]], notes: list[str]
) -> CsvMapping:
    """The decimal mark the amounts agree on: a comma where some say so ("-37,80",
    "1.150,00") and none says point. Amounts that say both are refused, with the two options;
    amounts that say neither ("1,500", "12") read with a point."""
    if mapping.decimal_comma is not None:
        return mapping
    columns = [c for c in (mapping.amount, mapping.debit, mapping.credit) if c]
    texts = [str(r.get(c) or "").strip() for r in records[:SAMPLE_ROWS] for c in columns]
    mark, point_example, comma_example = file_decimal_mark(t for t in texts if t)
    if point_example is not None:
        raise ImportErrors(
            [
                RowError(
                    1,
                    columns[0],
                    f"amounts such as {point_example!r} and {comma_example!r} write the decimal "
                    "mark both ways; pass --decimal-point or --decimal-comma",
                )
            ]
        )
    if mark == ",":
        notes.append("amounts read with a decimal comma (1.234,56)")
    return mapping.model_copy(update={"decimal_comma": mark == ","})


def _is_negative(text: str, decimal_comma: bool) -> bool:
    try:
        return parse_amount(text, decimal_comma) < 0
    except ValueError:
        return False  # the row's own check reports it


def _sign_convention(
    mapping: CsvMapping, records: Sequence[dict[str, Any]], notes: list[str]
) -> CsvMapping:
    """Unsigned amounts with a type column take their direction from it. Otherwise most
    lines of any account are spending, so the more common sign is money out."""
    if mapping.amount is None or (mapping.debit and mapping.credit):
        return mapping
    comma = mapping.decimal_comma is True
    signs = [
        _is_negative(text, comma)
        for r in records[:SAMPLE_ROWS]
        if (text := str(r.get(mapping.amount) or "").strip())
    ]
    negative = sum(signs)
    if mapping.type and negative == 0:
        notes.append(f"amounts carry no sign: the direction comes from {mapping.type!r}")
        return mapping.model_copy(update={"sign_from_type": True})
    if mapping.negative_is_debit is not None:
        return mapping
    negative_is_debit = negative_is_money_out(negative, len(signs))
    notes.append(
        "most amounts are "
        + (
            "negative: negative is money out"
            if negative_is_debit
            else "positive: positive is money out"
        )
    )
    return mapping.model_copy(update={"negative_is_debit": negative_is_debit})


def negative_is_money_out(negative: int, signed: int) -> bool:
    """Whether a column's negative amounts are money out: most lines of any account are
    spending, so the more common sign is (a bank's negative debits, a card's positive charges)."""
    return negative * 2 >= signed


def direction_of(type_value: str) -> str | None:
    value = type_value.strip().lower()
    if value in CREDIT_TYPES:
        return "credit"
    if value in DEBIT_TYPES:
        return "debit"
    return None
