"""Amounts as banks print them: "-1,234.56" in the US and UK, "-1.234,56" in most of Europe,
"1 234,56" in France, "1'234.50" in Switzerland, "4.50-" from accounting software, with a
currency's sign or code beside them. Which mark is the decimal one is the file's, not the row's
(``decimal_mark``): "1,500" is fifteen hundred in one file and one and a half in another."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

# At most 15 digits before the point and 6 after, and no exponent: "1e999999" would make a
# megabyte number out of a few bytes of input.
_PLAIN_AMOUNT = re.compile(r"[+-]?\s*(?:\d{1,15}(?:\.\d{0,6})?|\.\d{1,6})")
_CURRENCY = r"[$€£¥₹₽₩₺₴₪฿¢]|[A-Z]{3}\b|kr\.?|zł|Kč|Ft"
_CURRENCY_AROUND = re.compile(rf"^\s*(?:{_CURRENCY})\s*|\s*(?:{_CURRENCY})\s*$", re.IGNORECASE)
# Thousands grouped by a space (a no-break one in French exports) or an apostrophe (Swiss).
_GROUPING = re.compile(r"[\s\u00a0\u202f'’]")
_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-"})
_LAST_MARK = re.compile(r"([.,])(\d*)$")


def parse_amount(value: str, decimal_comma: bool = False) -> Decimal:
    """The amount in ``value``, a ``ValueError`` naming it if it is none. Signs: a leading "-"
    or "+", a trailing "-", or parentheses. ``decimal_comma``: "," is the decimal mark and "."
    groups thousands; otherwise the other way round."""
    text = _cleaned(value)
    grouping, mark = (".", ",") if decimal_comma else (",", ".")
    text = text.replace(grouping, "").replace(mark, ".")
    if not _PLAIN_AMOUNT.fullmatch(text):
        raise ValueError(f"not an amount: {value[:40]!r}")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not an amount: {value[:40]!r}") from None


def _cleaned(value: str) -> str:
    """The sign and the digits with their marks: currency and grouping spaces gone, a trailing
    minus or parentheses as a leading minus."""
    text = _CURRENCY_AROUND.sub("", value.strip().translate(_MINUS))
    if text.startswith("(") and text.endswith(")"):
        text = "-" + text[1:-1]
    elif text.endswith("-") and not text.startswith(("-", "+")):
        text = "-" + text[:-1]
    sign = text[:1] if text[:1] in ("+", "-") else ""
    return sign + _GROUPING.sub("", _CURRENCY_AROUND.sub("", text[len(sign) :]))


def decimal_mark(text: str) -> str | None:
    """What one amount says of its decimal mark: "," or ".", or None where it could be either
    ("1,500", "1.500": a thousands group) or it has none."""
    cleaned = _cleaned(text)
    if "," in cleaned and "." in cleaned:
        return "," if cleaned.rfind(",") > cleaned.rfind(".") else "."
    last = _LAST_MARK.search(cleaned)
    if last is None or len(last.group(2)) == 3:
        return None
    return last.group(1)


def file_decimal_mark(texts: Iterable[str]) -> tuple[str | None, str | None, str | None]:
    """The decimal mark a column's amounts agree on ("," or "."; None where none says), with an
    example of each mark where they disagree (else None twice)."""
    seen: dict[str, str] = {}
    for text in texts:
        mark = decimal_mark(text)
        if mark is not None:
            seen.setdefault(mark, text)
    if len(seen) > 1:
        return None, seen["."], seen[","]
    return next(iter(seen), None), None, None
