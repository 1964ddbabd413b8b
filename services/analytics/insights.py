"""Insights over a user's transactions, pure: recurring payments and possible duplicate charges."""

from __future__ import annotations

import calendar
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise, takewhile
from typing import NamedTuple

# (name, typical days between charges, tolerance in days)
CADENCES = (
    ("weekly", 7.0, 1.5),
    ("biweekly", 14.0, 2.5),
    ("semimonthly", 15.22, 3.0),  # the 1st and the 15th: many payrolls
    ("monthly", 30.44, 4.0),
    ("quarterly", 91.31, 8.0),
    ("yearly", 365.25, 10.0),
)
CADENCE_DAYS = {name: days for name, days, _ in CADENCES}
MIN_OCCURRENCES = 3
MAX_SKIPPED = 2  # a gap of up to three periods is a skipped payment, not the end of a series
BAND = 0.35  # a recurring amount stays within 35% of its usual (utilities move with the season)
STEADY_SPREAD = 0.15  # and its amounts spread less than this (median deviation over median)
RISE_MIN = 0.02
# A varying bill's interval is the range of its last few amounts. The range of n draws holds the
# next one with probability (n - 1) / (n + 1): nine make the 80% the forecast's intervals promise
# (three held only half of a utility's months).
RANGE_OCCURRENCES = 9
DUPLICATE_WINDOW = timedelta(hours=24)


class Charge(NamedTuple):  # a tuple: summaries build thousands per request
    transaction_id: str
    merchant: str  # normalized key
    display: str  # as printed
    amount: float
    at: datetime
    direction: str = "debit"


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
    direction: str = "debit"  # "credit": income (salary, benefits), "debit": a bill
    key: str = ""  # the normalized merchant key that groups its charges
    low_amount: float = 0.0  # the range of its recent amounts: a bill's own small interval
    high_amount: float = 0.0
    # The last amount is a new price: a step up from a flat one (a subscription's rise), not
    # one more draw of a bill that always varies (a utility's higher month).
    repriced: bool = False

    def expected_between(self, start: datetime, end: datetime) -> list[datetime]:
        """The dates in [start, end) when this payment is next expected. A series whose payments
        stopped (none for more than its allowed skips) is expected no more."""
        days = CADENCE_DAYS[self.cadence]
        if (start - self.last_date).total_seconds() / 86400 > days * (1 + MAX_SKIPPED):
            return []
        dates = []
        at = self.next_expected
        while at < end:
            if at >= start:
                dates.append(at)
            at = _next(at, self.cadence, days)
        return dates


def recurring_payments(charges: Sequence[Charge]) -> list[Recurring]:
    """Same merchant and direction at a regular interval for a steady amount, at least three
    times: bills and subscriptions (debits), salary and other income (credits)."""
    series_of: defaultdict[tuple[str, str], list[Charge]] = defaultdict(list)
    for charge in charges:
        series_of[(charge.merchant, charge.direction)].append(charge)
    found = [r for series in series_of.values() if (r := _recurring(series)) is not None]
    return sorted(found, key=lambda r: r.next_expected)


def _recurring(series: list[Charge]) -> Recurring | None:
    series = _without_duplicates(sorted(series, key=lambda c: c.at))
    if len(series) < MIN_OCCURRENCES:
        return None
    gaps = [(b.at - a.at).total_seconds() / 86400 for a, b in pairwise(series)]
    cadence = _cadence(gaps)
    amounts = [c.amount for c in series]
    if cadence is None or not _steady(amounts):
        return None
    name, days = cadence
    last = series[-1]
    spread = _recent_range(amounts)
    rose = last.amount > series[-2].amount * (1 + RISE_MIN)
    return Recurring(
        merchant=last.display,
        cadence=name,
        typical_amount=round(statistics.median(amounts[-MIN_OCCURRENCES:]), 2),
        last_amount=last.amount,
        last_date=last.at,
        next_expected=_next(last.at, name, days),
        occurrences=len(series),
        amount_rose=rose,
        direction=last.direction,
        key=last.merchant,
        low_amount=min(spread),
        high_amount=max(spread),
        repriced=bool(rose and _flat(amounts[-1 - MIN_OCCURRENCES : -1])),
    )


def _recent_range(amounts: list[float]) -> list[float]:
    """The amounts a bill's interval spans: a fixed price's own (a rent, a subscription since
    its last price change), else the last ``RANGE_OCCURRENCES`` (a utility that varies)."""
    last = amounts[-1]
    fixed = list(takewhile(lambda a: abs(a - last) <= 0.005 * last, reversed(amounts)))
    return fixed if len(fixed) >= 2 else amounts[-RANGE_OCCURRENCES:]


def _flat(amounts: list[float]) -> bool:
    """One price, to within ``RISE_MIN``: what a rise after it makes a new price."""
    return bool(max(amounts) - min(amounts) <= RISE_MIN * statistics.median(amounts))


def _without_duplicates(series: list[Charge]) -> list[Charge]:
    """A charge repeated for the same amount within a day is a duplicate (reported as one by
    possible_duplicates), not a payment with a cadence of its own."""
    kept: list[Charge] = []
    for charge in series:
        if (
            kept
            and abs(charge.amount - kept[-1].amount) < 0.005
            and charge.at - kept[-1].at <= DUPLICATE_WINDOW
        ):
            continue
        kept.append(charge)
    return kept


def _periods(gap: float, days: float, tolerance: float) -> int | None:
    """How many periods a gap spans (more than one: payments were skipped), or None."""
    k = max(1, round(gap / days))
    return k if k <= 1 + MAX_SKIPPED and abs(gap - k * days) <= tolerance * k else None


def _cadence(gaps: list[float]) -> tuple[str, float] | None:
    """The cadence that explains the gaps: most are one period (a bill paid on the next
    business day is still one), the rest whole periods with payments skipped between them."""
    for name, days, tolerance in CADENCES:
        spans = [_periods(g, days, tolerance) for g in gaps]
        if None in spans:
            continue
        singles = sum(1 for k in spans if k == 1)
        if singles >= max(MIN_OCCURRENCES - 1, len(gaps) / 2):
            return name, days
    return None


def _tight(amounts: Sequence[float]) -> bool:
    """Within a band around their usual value, and tightly spread."""
    usual = statistics.median(amounts)
    if usual <= 0:
        return False
    spread = statistics.median(abs(a - usual) for a in amounts) / usual
    return spread <= STEADY_SPREAD and all(abs(a - usual) <= BAND * usual for a in amounts)


def _steady(amounts: list[float]) -> bool:
    """Recent amounts steady, or steady before a new price that the last two payments share (a
    subscription that went up, by any amount up to double)."""
    if _tight(amounts[-2 * MIN_OCCURRENCES :]):
        return True
    before, after = amounts[:-2], amounts[-2:]
    if len(before) < MIN_OCCURRENCES - 1 or abs(after[0] - after[1]) > 0.005 * max(after):
        return False
    usual = statistics.median(before[-2 * MIN_OCCURRENCES :])
    return _tight(before[-2 * MIN_OCCURRENCES :]) and usual / 2 <= after[1] <= 2 * usual


def _next(last: datetime, cadence: str, days: float) -> datetime:
    """Monthly and longer cadences fall on the same day of the month (clamped to its end), not a
    fixed number of days later; shorter ones are a whole number of days."""
    months = {"monthly": 1, "quarterly": 3, "yearly": 12}.get(cadence)
    if months is None:
        return last + timedelta(days=round(days))
    index = last.year * 12 + last.month - 1 + months
    year, month = divmod(index, 12)
    day = min(last.day, calendar.monthrange(year, month + 1)[1])
    return last.replace(year=year, month=month + 1, day=day)


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
