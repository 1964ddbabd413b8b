"""Webhook signatures: ``X-Spendstream-Signature: t=<unix>,v1=<hex>``, where the hex is the
HMAC-SHA256 of ``"<t>.<raw body>"``. Several v1 values may be sent (a bank rotating its secret),
and several secrets may be valid at once (Spendstream rotating its own)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

TOLERANCE_S = 300


class InvalidSignature(Exception):
    """Why a signature was refused; the message is safe to return to the caller."""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def parse_header(header: str | None) -> tuple[int, list[str]]:
    if not header:
        raise InvalidSignature("missing X-Spendstream-Signature header")
    timestamp: int | None = None
    signatures = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidSignature("malformed X-Spendstream-Signature: expected t=<unix>,v1=<hex>")
    return timestamp, signatures


def parse_fresh_header(header: str | None, *, now: float | None = None) -> tuple[int, list[str]]:
    """The header's timestamp and signatures, if well formed and recent; else ``InvalidSignature``.
    Costs no secret and no database: the first thing to check."""
    timestamp, signatures = parse_header(header)
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_S:
        raise InvalidSignature(f"signature timestamp outside the {TOLERANCE_S} s tolerance")
    return timestamp, signatures


def matching_signature(
    timestamp: int, signatures: list[str], body: bytes, secrets: Iterable[str]
) -> str | None:
    """The signature that one of ``secrets`` made over this body, or None."""
    signed = f"{timestamp}.".encode() + body
    matched = None
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        for candidate in signatures:
            # Compare every pair, so the time taken says nothing about which part matched.
            if hmac.compare_digest(expected, candidate):
                matched = candidate
    return matched
