"""Bank exports to transactions: CSV (columns by preset, by common names or as mapped; see
detect.py), OFX/QFX (SGML 1.x or XML 2.x), CAMT.053 (camt.py) and QIF (qif.py).

Files without transaction ids get stable ones derived from account, date, amount and
description, plus an ordinal among identical rows, so re-importing a file or an overlapping
export creates no duplicates.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from schemas import Transaction
from schemas.transaction import TIMESTAMP_WINDOW, TimestampWindow
from services.ingest.amounts import decimal_mark, parse_amount
from services.ingest.camt import camt_rows, is_camt
from services.ingest.detect import (
    DATE_FORMATS,
    DATE_HEADERS,
    Detected,
    direction_of,
    header_key,
    resolve,
)
from services.ingest.encoding import decode_export
from services.ingest.mapping import CsvMapping, ImportErrors, RowError, row_fields
from services.ingest.qif import is_qif, qif_rows
from services.ingest.spreadsheet import is_xlsx, xlsx_to_csv

__all__ = [
    "AccountRequired",
    "CsvMapping",
    "ExportRead",
    "ImportErrors",
    "RowError",
    "parse_csv",
    "parse_export",
    "parse_ofx",
    "read_csv",
    "read_export",
]

MAX_IMPORT_ROWS = 100_000
HEADER_SEARCH_LINES = 30  # some banks put a summary block above the header


def parse_date(value: str, fmt: str | None) -> datetime:
    text = value.strip()
    for candidate in (fmt,) if fmt else DATE_FORMATS:
        try:
            parsed = datetime.strptime(text, candidate)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def account_scoped_id(account_id: str, file_id: str) -> str:
    """A bank's own id (an OFX FITID, a CSV id column) is unique within its account only: two
    accounts' files can both say "20261103-1", and one of them would then be dropped as a
    repeat of the other. The account goes into the id; hashed where both would not fit."""
    readable = f"{account_id}:{file_id}"
    if len(readable) <= 64 and not any(c.isspace() or ord(c) < 32 for c in readable):
        return readable
    basis = f"{account_id}\x1f{file_id}"
    return f"imp-{hashlib.sha256(basis.encode()).hexdigest()[:40]}"


def stable_id(account_id: str, when: datetime, amount: Decimal, description: str) -> str:
    """The same row of the same account always gets the same id, whatever file it comes in."""
    basis = f"{account_id}|{when.date().isoformat()}|{amount:.2f}|{description.strip().lower()}"
    return f"imp-{hashlib.sha256(basis.encode()).hexdigest()[:24]}"


def _build(
    rows: list[tuple[int, dict[str, Any]]], account_id: str, window: TimestampWindow | None
) -> list[Transaction]:
    """Validate, give ids to rows without one, and report errors by row and column."""
    context = {TIMESTAMP_WINDOW: window} if window else None
    seen: Counter[str] = Counter()
    transactions, errors = [], []
    for line, fields in rows:
        if fields.get("transaction_id"):
            fields["transaction_id"] = account_scoped_id(account_id, fields["transaction_id"])
        else:
            base = stable_id(
                account_id, fields["timestamp"], fields["signed"], fields.get("description") or ""
            )
            fields["transaction_id"] = f"{base}-{seen[base]}"  # identical rows: 0, 1, 2, ...
            seen[base] += 1
        fields.pop("signed")
        try:
            transactions.append(
                Transaction.model_validate({"account_id": account_id, **fields}, context=context)
            )
        except ValidationError as exc:
            for e in exc.errors(include_url=False, include_input=False):
                errors.append(RowError(line, ".".join(map(str, e["loc"])), e["msg"]))
    if errors:
        raise ImportErrors(errors)
    return transactions


def _cell(record: dict[str, Any], column: str | None) -> str:
    """A cell as text: "" for an unmapped column, or one a short row does not reach."""
    value = record.get(column) if column else None
    return value if isinstance(value, str) else ""


def _signed_amount(record: dict[str, Any], mapping: CsvMapping) -> Decimal:
    """Negative spends, positive receives: from a debit/credit pair, from an unsigned amount
    and the type column, or from one signed column and the file's sign convention."""
    comma = mapping.decimal_comma is True
    if mapping.debit and mapping.credit:
        out, into = _cell(record, mapping.debit).strip(), _cell(record, mapping.credit).strip()
        return (parse_amount(into, comma) if into else Decimal(0)) - abs(
            parse_amount(out, comma) if out else Decimal(0)
        )
    text = _cell(record, mapping.amount)
    if not text.strip():
        return Decimal(0)  # a balance or note line (Bank of America's opening balance)
    amount = parse_amount(text, comma)
    if mapping.sign_from_type:
        direction = direction_of(_cell(record, mapping.type))
        return abs(amount) if direction == "credit" else -abs(amount)
    return amount if mapping.negative_is_debit is not False else -amount


def _csv_rows(text: str, max_rows: int) -> tuple[list[str], list[tuple[int, dict[str, Any]]], str]:
    """The header, the records (each with its line) and the delimiter; ``ImportErrors`` for a
    malformed file (an oversized field, say) or one with more than ``max_rows`` records. A
    summary block above the header (as Bank of America prints) is skipped: the header is the
    first line that names a date column."""
    lines = text.lstrip("\ufeff").splitlines(keepends=True)
    skip, delimiter = _header_line(lines)
    reader = csv.DictReader(io.StringIO("".join(lines[skip:])), delimiter=delimiter)
    records: list[tuple[int, dict[str, Any]]] = []
    try:
        columns = [c for c in (reader.fieldnames or []) if c is not None]
        for record in reader:
            if len(records) == max_rows:
                raise ImportErrors(
                    [RowError(max_rows + 2, "file", f"more than {max_rows:,} rows; split the file")]
                )
            if any(isinstance(v, str) and v.strip() for v in record.values()):
                records.append((reader.line_num + skip, record))
    except csv.Error as exc:
        raise ImportErrors(
            [RowError(reader.line_num + skip, "file", f"not readable as CSV: {exc}")]
        ) from None
    return columns, records, delimiter


# Most of Europe separates fields with a semicolon, since its decimal mark is the comma.
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "bars"}


def _header_line(lines: list[str]) -> tuple[int, str]:
    """The header's line and the delimiter it is split by: the first line that, split by one
    of ``DELIMITERS``, names a date column (by the delimiter that splits it into the most
    cells); else the first line, by the delimiter that splits it most."""
    for index, line in enumerate(lines[:HEADER_SEARCH_LINES]):
        split = {d: _cells(line, d) for d in DELIMITERS}
        named = [d for d, cells in split.items() if any(c in DATE_HEADERS for c in cells)]
        if named:
            return index, max(named, key=lambda d: len(split[d]))
    first = lines[0] if lines else ""
    return 0, max(DELIMITERS, key=lambda d: len(_cells(first, d)))


def header_delimiter(lines: list[str]) -> str:
    """The delimiter of a table whose header is among ``lines`` (``_header_line``)."""
    return _header_line(lines)[1]


def _cells(line: str, delimiter: str) -> list[str]:
    try:
        return [header_key(cell) for cell in next(csv.reader([line], delimiter=delimiter))]
    except (csv.Error, StopIteration):
        return []


def parse_csv(
    text: str,
    mapping: CsvMapping,
    *,
    account_id: str,
    currency: str | None = None,
    window: TimestampWindow | None = None,
    max_rows: int = MAX_IMPORT_ROWS,
    preset: str | None = None,
) -> list[Transaction]:
    transactions, _ = read_csv(
        text,
        mapping,
        account_id=account_id,
        currency=currency,
        window=window,
        max_rows=max_rows,
        preset=preset,
    )
    return transactions


def read_csv(
    text: str,
    mapping: CsvMapping,
    *,
    account_id: str,
    currency: str | None = None,
    window: TimestampWindow | None = None,
    max_rows: int = MAX_IMPORT_ROWS,
    preset: str | None = None,
) -> tuple[list[Transaction], Detected]:
    """The transactions of a CSV export, and how its columns were read."""
    columns, records, delimiter = _csv_rows(text, max_rows)
    detected = resolve(columns, [r for _, r in records], mapping, preset)
    if delimiter != ",":
        detected.notes.insert(0, f"fields separated by {DELIMITER_NAMES[delimiter]}")
    mapping = detected.mapping
    file_currency = currency or mapping.default_currency or "USD"
    rows, errors = [], []
    for line, record in records:
        try:
            fields = _row_fields(record, mapping, file_currency)
        except RowProblem as problem:
            errors.append(RowError(line, problem.column, problem.message))
            continue
        if fields is not None:
            rows.append((line, fields))
    if errors:
        raise ImportErrors(errors)
    return _build(rows, account_id, window), detected


class RowProblem(ValueError):
    def __init__(self, column: str, message: str):
        super().__init__(message)
        self.column, self.message = column, message


def _row_fields(
    record: dict[str, Any], mapping: CsvMapping, currency: str
) -> dict[str, Any] | None:
    """One record's fields, None for a zero line (a hold, a note), or a ``RowProblem``."""
    date_column = mapping.date or "date"
    try:
        when = parse_date(_cell(record, date_column), mapping.date_format)
    except ValueError as exc:
        raise RowProblem(date_column, str(exc)) from None
    try:
        signed = _signed_amount(record, mapping)
    except ValueError as exc:
        raise RowProblem(mapping.amount or mapping.debit or "amount", str(exc)) from None
    if signed == 0:
        return None
    description = _cell(record, mapping.description).strip()
    merchant = _cell(record, mapping.merchant).strip() or description
    return row_fields(
        when,
        signed,
        merchant=merchant,
        description=description,
        currency=_cell(record, mapping.currency).strip().upper() or currency,
        category=_cell(record, mapping.category).strip(),
        transaction_id=_cell(record, mapping.transaction_id).strip(),
    )


_OFX_BLOCK = re.compile(
    r"<STMTTRN>(.*?)(?:</STMTTRN>|(?=<STMTTRN>)|(?=</BANKTRANLIST>))", re.S | re.I
)
_OFX_FIELD = re.compile(r"<(\w+)>([^<\r\n]*)")
_OFX_DATETIME = re.compile(
    r"(?P<stamp>\d{8}(?:\d{6})?)(?:\.\d{1,6})?"
    r"(?:\[(?P<hours>[+-]?\d{1,2})(?:\.(?P<minutes>\d{1,2}))?(?::[A-Za-z]{1,8})?\])?"
)


def parse_ofx_datetime(value: str) -> datetime:
    """OFX's YYYYMMDD[HHMMSS[.XXX]][[gmt offset[:zone]]], the offset in hours, maybe with
    minutes after a dot ("[-5:EST]", "[+5.30:IST]"); GMT without one, as the spec says. A
    date-only value with a zone (which banks send, though the spec asks for a time) is
    midnight there. Strict OFX libraries refuse such files; a bank's file is not refused."""
    match = _OFX_DATETIME.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not an OFX date: {value!r}")
    stamp = match["stamp"].ljust(14, "0")
    offset = timedelta(0)
    if match["hours"] is not None:
        hours = int(match["hours"])
        minutes = int(match["minutes"] or 0) * (-1 if match["hours"].startswith("-") else 1)
        offset = timedelta(hours=hours, minutes=minutes)
    return datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=timezone(offset))


def parse_ofx(
    text: str,
    *,
    account_id: str | None = None,
    currency: str | None = None,
    window: TimestampWindow | None = None,
) -> tuple[list[Transaction], str]:
    """Transactions and the account they belong to (ACCTID unless ``account_id`` is given)."""
    account_match = re.search(r"<ACCTID>([^<\r\n]+)", text, re.I)
    account = account_id or (account_match.group(1).strip() if account_match else None)
    if not account:
        raise ImportErrors([RowError(1, "ACCTID", "no account in the file; pass account_id")])
    currency_match = re.search(r"<CURDEF>([^<\r\n]+)", text, re.I)
    code = currency or (currency_match.group(1).strip() if currency_match else "USD")
    rows, errors = [], []
    for index, block in enumerate(_OFX_BLOCK.findall(text), start=1):
        fields = {k.upper(): html.unescape(v.strip()) for k, v in _OFX_FIELD.findall(block)}
        try:
            when = parse_ofx_datetime(fields.get("DTPOSTED", ""))
        except ValueError:
            errors.append(
                RowError(index, "DTPOSTED", f"not an OFX date: {fields.get('DTPOSTED')!r}")
            )
            continue
        try:
            # OFX allows either decimal mark and no thousands grouping: "-12,50" is 12.50.
            amount = fields.get("TRNAMT", "")
            signed = parse_amount(amount, decimal_mark(amount) == ",")
        except ValueError as exc:
            errors.append(RowError(index, "TRNAMT", str(exc)))
            continue
        if signed == 0:
            continue
        name = fields.get("NAME") or fields.get("PAYEE") or ""
        rows.append(
            (
                index,
                row_fields(
                    when,
                    signed,
                    merchant=name,
                    description=fields.get("MEMO") or name,
                    currency=code,
                    transaction_id=fields.get("FITID"),
                ),
            )
        )
    if errors:
        raise ImportErrors(errors)
    return _build(rows, account, window), account


class AccountRequired(ValueError):
    """A CSV export names no account: the caller has to."""


def is_ofx(filename: str, text: str) -> bool:
    return filename.lower().endswith((".ofx", ".qfx")) or "<OFX>" in text[:2000].upper()


@dataclass
class ExportRead:
    transactions: list[Transaction]
    kind: str  # "csv", "xlsx", "ofx", "qif" or "camt.053"
    detected: Detected | None = None  # how a CSV's columns were read


def read_export(
    content: str | bytes,
    *,
    filename: str,
    mapping: CsvMapping,
    account_id: str | None = None,
    currency: str | None = None,
    window: TimestampWindow | None = None,
    preset: str | None = None,
) -> ExportRead:
    """The transactions of a bank export: OFX/QFX, CAMT.053 XML or QIF (known by name or
    content), or CSV (or an .xlsx workbook's first sheet) read with ``mapping`` (what it leaves
    open is detected). Bytes are read in the file's own encoding (``decode_export``). One set
    of rules for the CLI and the HTTP import. OFX and CAMT.053 name their account and currency
    unless ``account_id`` or ``currency`` override them; QIF, CSV and XLSX need the account,
    and are in USD unless a column, a header, a preset or ``currency`` says otherwise."""
    if isinstance(content, bytes) and is_xlsx(filename, content):
        text = xlsx_to_csv(content, MAX_IMPORT_ROWS + HEADER_SEARCH_LINES)
        return _read_csv_export(text, mapping, account_id, currency, window, preset, "xlsx")
    text = decode_export(content) if isinstance(content, bytes) else content
    if is_ofx(filename, text):
        transactions, _ = parse_ofx(text, account_id=account_id, currency=currency, window=window)
        return ExportRead(transactions, "ofx")
    if is_camt(filename, text):
        rows, named_account, named_currency = camt_rows(text)
        account = account_id or named_account
        if not account:
            raise AccountRequired("the statement names no account")
        code = currency or named_currency or "USD"
        return ExportRead(_build(_in_currency(rows, code), account, window), "camt.053")
    if is_qif(filename, text):
        if not account_id:
            raise AccountRequired("an account is required for QIF files")
        rows = qif_rows(text, mapping.date_format)
        return ExportRead(_build(_in_currency(rows, currency or "USD"), account_id, window), "qif")
    return _read_csv_export(text, mapping, account_id, currency, window, preset)


def _read_csv_export(
    text: str,
    mapping: CsvMapping,
    account_id: str | None,
    currency: str | None,
    window: TimestampWindow | None,
    preset: str | None,
    kind: str = "csv",
) -> ExportRead:
    if not account_id:
        raise AccountRequired(f"an account is required for {kind.upper()} files")
    transactions, detected = read_csv(
        text, mapping, account_id=account_id, currency=currency, window=window, preset=preset
    )
    return ExportRead(transactions, kind, detected)


def _in_currency(
    rows: list[tuple[int, dict[str, Any]]], currency: str
) -> list[tuple[int, dict[str, Any]]]:
    """Rows without a currency of their own take the file's."""
    return [(line, {"currency": currency, **fields}) for line, fields in rows]


def parse_export(
    content: str | bytes,
    *,
    filename: str,
    mapping: CsvMapping,
    account_id: str | None = None,
    currency: str | None = None,
    window: TimestampWindow | None = None,
    preset: str | None = None,
) -> list[Transaction]:
    return read_export(
        content,
        filename=filename,
        mapping=mapping,
        account_id=account_id,
        currency=currency,
        window=window,
        preset=preset,
    ).transactions
