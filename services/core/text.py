"""Normalizing merchant and category texts, so one shop is one key however a bank prints it."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Bumped whenever a change to the rules below changes any key: the migration runner then derives
# the stored keys again (services/core/db.py).
MERCHANT_KEY_VERSION = 3
UNKNOWN_MERCHANT = "unknown"

# Card processors and point-of-sale prefixes banks put in front of the merchant.
_PREFIX = re.compile(
    r"^(?:sq|tst|sp|pp|paypal|pos|dd|py|ach|chk|dbt|purchase|debit|card|visa|mc)\s*[*#:]\s*",
    re.IGNORECASE,
)
_POS_WORD = re.compile(r"^(?:(?:pos|debit|purchase|card|recurring|checkcard)\s+)+", re.IGNORECASE)
_US_STATE = (
    r"A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|"
    r"O[HKR]|PA|RI|S[CD]|T[NX]|UT|V[AT]|W[AIVY]"
)
# "... OAKLAND CA": the state goes, and the city before it only where the name plainly ended:
# after the padding of a fixed-width descriptor, a store number or a web address. Otherwise
# nothing says where the name ends ("NATIONAL GRID NY", "JOE'S PIZZA NEW YORK NY"), and a
# city left in costs less than a name cut to its first word.
_STATE_SUFFIX = re.compile(
    rf"(?:(?:\s{{2,}}|(?<=[0-9])\s+|(?<=\.[Cc][Oo][Mm])\s+)[A-Za-z .]*?)?\s+(?:{_US_STATE})$"
)
# A country code after the padding of a fixed-width descriptor ("M&S CAFE        GB"). Without
# the padding a last short word is too often part of the name ("TOYS R US").
_PADDED_COUNTRY = re.compile(r"\s{2,}[A-Z]{2}$")
# Accents fold to their letters, so "CAFÉ" and "Cafe" are one shop; these few have no
# decomposition of their own.
_UNDECOMPOSED = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ß": "ss",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "þ": "th",
        "Þ": "TH",
        "ð": "d",
        "ı": "i",
    }
)
# A short number that opens the name is the brand ("7-ELEVEN", "24 HOUR FITNESS", "3M"); any
# other token with a digit is a store number, a date or a reference.
_BRAND_NUMBER = re.compile(r"^\d{1,3}(?=-?[A-Za-z]|\s+[A-Za-z]{2})")
_STORE_NUMBER = re.compile(r"#\s*\w+|\b(?:store|str|no\.?)\s*\d+|\b\w*\d\w*", re.IGNORECASE)
_URL_NOISE = re.compile(r"\b(?:www\.|https?://)|\.(?:com|net|org)\b", re.IGNORECASE)
_NON_WORD = re.compile(r"[^a-z0-9&' ]+")
_KEPT_PUNCTUATION = frozenset("&' ")
# Where accents are marks on a letter that may be left off (Latin, Greek, Cyrillic: "Café" is
# "Cafe", "Ёлка" is "Елка"), they fold. In other scripts a combining mark is part of the letter
# (Japanese ブ is not フ, Hindi's vowel signs are vowels), so those letters stay whole.
_FOLDED_SCRIPTS = ((0x0000, 0x0530), (0x1D00, 0x2000))
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=65_536)  # merchants repeat endlessly; the regexes need not
def normalize_text(text: str | None) -> str:
    """'SQ *BLUE BOTTLE COFFEE #12 OAKLAND CA' -> 'blue bottle coffee'."""
    if not text:
        return ""
    value = fold_accents(text).strip()
    value = _PREFIX.sub("", value)
    value = _POS_WORD.sub("", value)
    value = _STATE_SUFFIX.sub("", value)
    value = _PADDED_COUNTRY.sub("", value)
    value = _URL_NOISE.sub(" ", value)
    brand_number = _BRAND_NUMBER.match(value)
    kept = brand_number.group(0) if brand_number else ""
    value = (kept + _STORE_NUMBER.sub(" ", value[len(kept) :])).lower()
    value = _NON_WORD.sub(" ", value) if value.isascii() else _only_words(value)
    return _SPACES.sub(" ", value).strip()


def merchant_key_text(text: str | None) -> str:
    """A merchant's key: its normalized text, or ``UNKNOWN_MERCHANT`` when nothing is left."""
    return normalize_text(text) or UNKNOWN_MERCHANT


def fold_accents(text: str) -> str:
    """Accents off where they are optional (``_FOLDED_SCRIPTS``), and compatibility forms as
    their plain letters (full-width Latin letters, half-width katakana)."""
    if text.isascii():
        return text
    composed = unicodedata.normalize("NFKC", text.translate(_UNDECOMPOSED))
    return "".join(_fold_letter(c) for c in composed)


def _fold_letter(letter: str) -> str:
    if letter.isascii():
        return letter
    decomposed = unicodedata.normalize("NFD", letter)
    base = ord(decomposed[0])
    if any(start <= base < end for start, end in _FOLDED_SCRIPTS):
        return "".join(c for c in decomposed if not unicodedata.combining(c))
    return letter


def _only_words(text: str) -> str:
    """``_NON_WORD`` for every script: letters, their marks and digits stay, with ``&'``."""
    return "".join(
        c
        if c.isalnum() or c in _KEPT_PUNCTUATION or unicodedata.category(c).startswith("M")
        else " "
        for c in text
    )
