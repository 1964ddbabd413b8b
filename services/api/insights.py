"""Insights over a user's transactions, pure: recurring payments and possible duplicate charges."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import NamedTuple

# (name, typical days between charges, tolerance in days)
CADENCES = (("weekly", 7, 1.5), ("biweekly", 14, 2.5), ("monthly", 30.4, 4), ("yearly", 365, 10))
MIN_OCCURRENCES = 3
AMOUNT_TOLERANCE = 0.2  # a recurring charge stays within 20% of its usual amount
RISE_MIN = 0.02
DUPLICATE_WINDOW = timedelta(hours=24)


class Charge(NamedTuple):  # a tuple: summaries build thousands per request
    transaction_id: str
    merchant: str  # normalized key
    display: str  # as printed
    amount: float
    at: datetime


@dataclass(frozen=True)
class Recurring:
    merchant: str
    cadence: str
    typical_amount: float
    last_amount: float
    last_date: datetime
    next_expected: datetime
    occurrences: int
    amount_rose: bool


def recurring_payments(charges: Sequence[Charge]) -> list[Recurring]:
    """Same merchant at a regular interval for a similar amount, at least three times."""
    by_merchant: defaultdict[str, list[Charge]] = defaultdict(list)
    for charge in charges:
        by_merchant[charge.merchant].append(charge)
    found = []
    for series in by_merchant.values():
        series.sort(key=lambda c: c.at)
        if len(series) < MIN_OCCURRENCES:
            continue
        gaps = [(b.at - a.at).total_seconds() / 86400 for a, b in pairwise(series)]
        median_gap = statistics.median(gaps)
        cadence = next(
            (
                name
                for name, days, tolerance in CADENCES
                if abs(median_gap - days) <= tolerance
                and all(abs(g - days) <= 2 * tolerance for g in gaps[-MIN_OCCURRENCES + 1 :])
            ),
            None,
        )
        if cadence is None:
            continue
        amounts = [c.amount for c in series]
        typical = statistics.median(amounts[:-1])
        if any(abs(a - typical) > AMOUNT_TOLERANCE * typical for a in amounts[-MIN_OCCURRENCES:]):
            continue
        last = series[-1]
        found.append(
            Recurring(
                merchant=last.display,
                cadence=cadence,
                typical_amount=round(typical, 2),
                last_amount=last.amount,
                last_date=last.at,
                next_expected=last.at + timedelta(days=median_gap),
                occurrences=len(series),
                amount_rose=last.amount > series[-2].amount * (1 + RISE_MIN),
            )
        )
    return sorted(found, key=lambda r: r.next_expected)


def possible_duplicates(charges: Sequence[Charge]) -> list[tuple[Charge, Charge]]:
    """Pairs charged by the same merchant for the same amount within 24 hours."""
    ordered = sorted(charges, key=lambda c: (c.merchant, c.amount, c.at))
    pairs = []
    for a, b in pairwise(ordered):
        if (
            a.merchant == b.merchant
            and abs(a.amount - b.amount) < 0.005
            and b.at - a.at <= DUPLICATE_WINDOW
        ):
            pairs.append((a, b))
    return pairs
