"""Amounts as a person reads them: the currency's symbol or code, and its ISO 4217 minor units."""

from __future__ import annotations

from schemas.currency import MINOR_UNITS, minor_units

__all__ = ["MINOR_UNITS", "UNITS_PER_DOLLAR", "dollar_scale", "format_money", "minor_units"]

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}


def format_money(amount: float, currency: str) -> str:
    """'$412.00', '€9.50', '¥1,200', '12.500 KWD'."""
    digits = f"{amount:,.{minor_units(currency)}f}"
    symbol = SYMBOLS.get(currency.upper())
    return f"{symbol}{digits}" if symbol else f"{digits} {currency.upper()}"


# About how many units of each currency a US dollar buys: the scale at which one person's amounts
# are compared with everyone's. A model learns from all accounts what a large purchase is, and a
# ¥1,200 coffee is not a $1,200 one. Amounts are compared as logarithms there, so the order of
# magnitude is what counts and rates a year or two old serve; nothing a person sees is converted
# with them (that is what the dated rates of `spendstream fx import` are for). Rounded from the
# ECB's reference rates; a currency not listed is taken at par.
UNITS_PER_DOLLAR: dict[str, float] = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "CHF": 0.88,
    "CAD": 1.36,
    "AUD": 1.5,
    "NZD": 1.65,
    "JPY": 150.0,
    "CNY": 7.2,
    "HKD": 7.8,
    "TWD": 32.0,
    "KRW": 1350.0,
    "SGD": 1.35,
    "MYR": 4.6,
    "THB": 35.0,
    "IDR": 16000.0,
    "PHP": 57.0,
    "VND": 25000.0,
    "INR": 83.0,
    "PKR": 280.0,
    "BDT": 118.0,
    "LKR": 300.0,
    "SEK": 10.5,
    "NOK": 10.7,
    "DKK": 6.9,
    "ISK": 138.0,
    "PLN": 4.0,
    "CZK": 23.0,
    "HUF": 360.0,
    "RON": 4.6,
    "BGN": 1.8,
    "RSD": 108.0,
    "UAH": 41.0,
    "RUB": 90.0,
    "KZT": 470.0,
    "GEL": 2.7,
    "TRY": 33.0,
    "ILS": 3.7,
    "AED": 3.67,
    "SAR": 3.75,
    "QAR": 3.64,
    "KWD": 0.31,
    "BHD": 0.38,
    "OMR": 0.385,
    "JOD": 0.71,
    "EGP": 48.0,
    "MAD": 10.0,
    "TND": 3.1,
    "ZAR": 18.5,
    "NGN": 1500.0,
    "GHS": 15.0,
    "KES": 130.0,
    "XOF": 600.0,
    "XAF": 600.0,
    "MXN": 18.0,
    "BRL": 5.5,
    "ARS": 900.0,
    "CLP": 930.0,
    "COP": 4000.0,
    "PEN": 3.75,
    "UYU": 39.0,
    "CRC": 520.0,
    "DOP": 59.0,
}


def dollar_scale(currency: str) -> float:
    """Units of ``currency`` a US dollar about buys (``UNITS_PER_DOLLAR``; 1 if not listed)."""
    return UNITS_PER_DOLLAR.get(currency.upper(), 1.0)
