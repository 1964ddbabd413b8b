"""Amounts as a person reads them: the currency's symbol or code, and its ISO 4217 minor units."""

from __future__ import annotations

# ISO 4217 currencies whose minor unit is not the usual two digits.
MINOR_UNITS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI"), 0
    ),
    **dict.fromkeys(("VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency.upper(), 2)


def format_money(amount: float, currency: str) -> str:
    """'$412.00', '€9.50', '¥1,200', '12.500 KWD'."""
    digits = f"{amount:,.{minor_units(currency)}f}"
    symbol = SYMBOLS.get(currency.upper())
    return f"{symbol}{digits}" if symbol else f"{digits} {currency.upper()}"
