"""How a transaction's category was decided."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Categorization:
    source: str  # "provided" by the client, "rule" (the user's correction), "predicted", "none"
    confidence: float | None = None
