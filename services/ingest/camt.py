"""ISO 20022 CAMT.053 bank statements (XML), parsed with defusedxml: entity expansion, external
entities and document type declarations are refused, so a hostile file cannot blow up or reach
out."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from services.ingest.mapping import ImportErrors, RowError, row_fields

_PLAIN_DECIMAL = re.compile(r"\d{1,15}(?:\.\d{1,6})?")
_CAMT_053 = re.compile(r"urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.\d+")


def is_camt(filename: str, text: str) -> bool:
    head = text[:4000]
    return bool(_CAMT_053.search(head)) or (
        filename.lower().endswith(".xml") and "BkToCstmrStmt" in head
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(element: ET.Element, path: str) -> ET.Element | None:
    """The first descendant along ``path`` (local names joined by /), ignoring namespaces."""
    current = [element]
    for name in path.split("/"):
        current = [c for e in current for c in e if _local(c.tag) == name]
        if not current:
            return None
    return current[0]


def _text(element: ET.Element, path: str) -> str:
    found = _find(element, path)
    return (found.text or "").strip() if found is not None else ""


def camt_rows(text: str) -> tuple[list[tuple[int, dict[str, Any]]], str | None, str | None]:
    """Booked entries as (ordinal, fields), and the statement's account (IBAN or other id) and
    currency."""
    try:
        root = fromstring(text.lstrip("\ufeff"), forbid_dtd=True)
    except DefusedXmlException as exc:
        raise ImportErrors([RowError(1, "file", f"refused XML: {exc}")]) from None
    except ET.ParseError as exc:
        raise ImportErrors([RowError(1, "file", f"not readable as XML: {exc}")]) from None
    statements = [e for e in root.iter() if _local(e.tag) == "Stmt"]
    if not statements:
        raise ImportErrors([RowError(1, "Stmt", "no statement in the file (is it CAMT.053?)")])
    first = statements[0]
    account = _text(first, "Acct/Id/IBAN") or _text(first, "Acct/Id/Othr/Id") or None
    currency = _text(first, "Acct/Ccy") or None
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[RowError] = []
    entries = [e for s in statements for e in s if _local(e.tag) == "Ntry"]
    for index, entry in enumerate(entries, start=1):
        status = _text(entry, "Sts/Cd") or _text(entry, "Sts")
        if status and status != "BOOK":
            continue  # pending or informational entries are not transactions yet
        try:
            rows.append((index, _entry_fields(entry)))
        except ValueError as exc:
            errors.append(RowError(index, "Ntry", str(exc)))
    if errors:
        raise ImportErrors(errors)
    return rows, account, currency


def _entry_fields(entry: ET.Element) -> dict[str, Any]:
    amount_element = _find(entry, "Amt")
    text = (amount_element.text or "").strip() if amount_element is not None else ""
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise ValueError(f"no readable Amt: {text[:40]!r}")
    amount = Decimal(text)
    signed = -amount if _text(entry, "CdtDbtInd") == "DBIT" else amount
    when = _text(entry, "BookgDt/DtTm") or _text(entry, "BookgDt/Dt") or _text(entry, "ValDt/Dt")
    try:
        timestamp = datetime.fromisoformat(when)
    except ValueError:
        raise ValueError(f"no readable booking date: {when!r}") from None
    details = _find(entry, "NtryDtls/TxDtls")
    counterparty = ""
    reference = _text(entry, "AddtlNtryInf")
    if details is not None:
        side = "RltdPties/Cdtr/Nm" if signed < 0 else "RltdPties/Dbtr/Nm"
        counterparty = _text(details, side) or _text(details, side.replace("/Nm", "/Pty/Nm"))
        reference = _text(details, "RmtInf/Ustrd") or reference
    return row_fields(
        timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC),
        signed,
        merchant=counterparty or reference,
        description=reference or counterparty,
        currency=amount_element.get("Ccy") if amount_element is not None else None,
        transaction_id=_text(entry, "AcctSvcrRef") or _text(entry, "NtryRef"),
    )
