"""A bank export's bytes as text, in the encoding the bank's software wrote it in.

Most exports are UTF-8, with or without a byte-order mark. A spreadsheet's "Unicode text" is
UTF-16 with one. Many European banks' desktop exports are in a Windows code page, where a German
"Bäckerei" has one byte for the "ä" that UTF-8 cannot read: read as UTF-8 it would be
"B\ufffdckerei", one shop would become two, and a Polish "Łódź" or a Russian "Пятёрочка" would be
unreadable. OFX says its code page in its header (``CHARSET:1252``), XML in its declaration.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

# Western European, Central European, Cyrillic: the code pages of bank exports that are not UTF-8.
# On a tie the first wins: Western European text reads alike in the first two (ä, é, ó, ü).
LEGACY_ENCODINGS = ("cp1252", "cp1250", "cp1251")
_DECLARED = re.compile(rb"(?:CHARSET:|encoding=[\"'])\s*([A-Za-z0-9_-]+)", re.IGNORECASE)
# What separates words in an export: spaces, the CSV's delimiters and quotes, punctuation.
_WORD = re.compile(r"[^\s,;|\"'()/:.\-]+")
_HEAD_BYTES = 2048
_SAMPLE_CHARS = 256 * 1024  # single-byte code pages: one character a byte


def decode_export(data: bytes) -> str:
    """The file's text: UTF-16 by its byte-order mark, UTF-8 where it reads as such, else the
    code page its header declares, else the ``LEGACY_ENCODINGS`` one it reads most like words in.
    Nothing is refused: a byte no code page defines reads as U+FFFD, which the row's checks see."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    declared = _declared_encoding(data[:_HEAD_BYTES])
    if declared is not None:
        try:
            return data.decode(declared)
        except UnicodeDecodeError:
            pass
    return _most_plausible(data)


def _declared_encoding(head: bytes) -> str | None:
    match = _DECLARED.search(head)
    if match is None:
        return None
    name = match.group(1).decode("ascii").lower()
    if name.isdigit():  # OFX's CHARSET:1252
        name = f"cp{name}"
    try:
        return codecs.lookup(name).name
    except LookupError:  # OFX's CHARSET:NONE, or a name nobody knows
        return None


def _most_plausible(data: bytes) -> str:
    """``data`` in the ``LEGACY_ENCODINGS`` one (of those that define every byte) whose words
    read most like words; on a tie the first; where none defines every byte, the first with
    U+FFFD for what it does not."""
    best: tuple[float, str] | None = None
    for encoding in LEGACY_ENCODINGS:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        # The words of the first part say enough; a large file need not be scanned whole.
        share = plausible_share(text[:_SAMPLE_CHARS])
        if best is None or share > best[0]:
            best = (share, text)
    return best[1] if best is not None else data.decode(LEGACY_ENCODINGS[0], errors="replace")


def plausible_share(text: str) -> float:
    """Of the words with a character beyond ASCII, the share that look like words: letters (and
    digits, and currency signs) only, of one script, and if Latin, not every letter accented.
    Read in the wrong code page, a Polish "Żabka" starts with a macron, a Polish "Łódź" mixes
    Cyrillic letters into Latin ones, and a Russian "Магнит" is six accented Latin letters."""
    words = [w for w in _WORD.findall(text) if not w.isascii()]
    if not words:
        return 1.0
    return sum(_plausible(word) for word in words) / len(words)


def _plausible(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    if any(not (c.isascii() or c.isalpha() or unicodedata.category(c) == "Sc") for c in word):
        return False
    scripts = {_script(letter) for letter in letters}
    if scripts == {"LATIN"}:
        return len(letters) < 2 or any(c.isascii() for c in letters)
    return len(scripts) <= 1


def _script(letter: str) -> str:
    if letter.isascii():
        return "LATIN"
    return unicodedata.name(letter, "UNKNOWN").split(" ", 1)[0]
