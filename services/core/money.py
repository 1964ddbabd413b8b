"""Amounts as a person reads them: the currency's symbol or code, and its ISO 4217 minor units."""

from __future__ import annotations

from schemas.currency import MINOR_UNITS, minor_units

__all__ = ["MINOR_UNITS", "format_money", "minor_units"]

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}


def format_money(amount: float, currency: str) -> str:
    """'$412.00', '€9.50', '¥1,200', '12.500 KWD'."""
    digits = f"{amount:,.{minor_units(currency)}f}"
    symbol = SYMBOLS.get(currency.upper())
    return f"{symbol}{digits}" if symbol else f"{digits} {currency.upper()}"
