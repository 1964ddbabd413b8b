"""ISO 4217 minor units: how many decimals an amount in each currency has. Part of the contract:
an amount with more decimals than its currency has is refused at the door."""

from __future__ import annotations

# ISO 4217 currencies whose minor unit is not the usual two digits.
MINOR_UNITS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI"), 0
    ),
    **dict.fromkeys(("VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency.upper(), 2)
