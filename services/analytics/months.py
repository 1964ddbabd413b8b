"""Calendar-month arithmetic shared by summaries, forecasts and the demo."""

from __future__ import annotations

from datetime import date, datetime


def month_start(value: date, offset: int = 0) -> datetime:
    """Midnight on the 1st of the month ``offset`` months from ``value``'s month."""
    index = value.year * 12 + value.month - 1 + offset
    return datetime(index // 12, index % 12 + 1, 1)
