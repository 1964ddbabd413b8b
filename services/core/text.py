"""Normalizing merchant and category texts, so one shop is one key however a bank prints it."""

from __future__ import annotations

import re
from functools import lru_cache

# Card processors and point-of-sale prefixes banks put in front of the merchant.
_PREFIX = re.compile(
    r"^(?:sq|tst|sp|pp|paypal|pos|dd|py|ach|chk|dbt|purchase|debit|card|visa|mc)\s*[*#:]\s*",
    re.IGNORECASE,
)
_POS_WORD = re.compile(r"^(?:(?:pos|debit|purchase|card|recurring|checkcard)\s+)+", re.IGNORECASE)
_STATE_SUFFIX = re.compile(
    r"\s+[A-Za-z .]+\s+(?:A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|"
    r"O[HKR]|PA|RI|S[CD]|T[NX]|UT|V[AT]|W[AIVY])$"
)
_STORE_NUMBER = re.compile(r"#\s*\w+|\b(?:store|str|no\.?)\s*\d+|\b\w*\d[\w-]*", re.IGNORECASE)
_URL_NOISE = re.compile(r"\b(?:www\.|https?://)|\.(?:com|net|org)\b", re.IGNORECASE)
_NON_WORD = re.compile(r"[^a-z&' ]+")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=65_536)  # merchants repeat endlessly; the regexes need not
def normalize_text(text: str | None) -> str:
    """'SQ *BLUE BOTTLE COFFEE #12 OAKLAND CA' -> 'blue bottle coffee'."""
    if not text:
        return ""
    value = text.strip()
    value = _PREFIX.sub("", value)
    value = _POS_WORD.sub("", value)
    value = _STATE_SUFFIX.sub("", value)
    value = _URL_NOISE.sub(" ", value)
    value = _STORE_NUMBER.sub(" ", value).lower()
    value = _NON_WORD.sub(" ", value)
    return _SPACES.sub(" ", value).strip()
