"""What confirmed fraud says about the transactions that follow it.

A person (or a bank's chargeback feed) confirms a transaction as fraud through the feedback
endpoint. Fraud clusters: a compromised terminal keeps skimming cards for weeks, a compromised
card keeps being used. So every later transaction carries these facts, as features the models
read like any other:

- ``merchant_confirmed_fraud``: the owner's own confirmed fraud at this merchant, past 28 days;
- ``merchant_confirmed_fraud_shared``: other users' confirmed fraud at this merchant, past 28
  days, and only once at least ``MIN_DISTINCT_USERS`` distinct other users confirmed some: an
  aggregate no single user can steer or be recognized in (``services.core.tenancy``);
- ``account_confirmed_fraud``: confirmed fraud on this account, past 14 days;
- ``merchant_days_since_fraud`` and ``account_days_since_fraud``: how long ago the newest
  confirmed fraud happened there (owner's own), capped: a terminal still skimming has fraud a
  week old, one repaired has only older;
- ``merchant_confirmed_fraud_share``: the owner's confirmed fraud at this merchant in the past 28
  days as a share of the owner's transactions there in those days (the Fraud Detection
  Handbook's terminal risk). Most confirmed fraud at a terminal is a stolen card's purchase there,
  one among many honest ones; a skimming terminal's is most of its trade. The transactions are
  counted by day (``count_transaction``, or ``set_traffic`` from PostgreSQL, which holds every
  partition's).

Counts are ``log1p`` of the count, all by event time. Pure and bounded: no Kafka, HTTP or SQL.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass

from services.core.tenancy import shareable

RISK_FEATURES: tuple[str, ...] = (
    "merchant_confirmed_fraud",
    "merchant_confirmed_fraud_shared",
    "account_confirmed_fraud",
    "merchant_days_since_fraud",
    "account_days_since_fraud",
    "merchant_confirmed_fraud_share",
)
# Rows stored before the share was added carry these.
RISK_FEATURES_V1 = RISK_FEATURES[:5]
NEVER_DAYS = 60.0  # "no confirmed fraud in memory" reads as this long ago
MERCHANT_DAYS = 28
ACCOUNT_DAYS = 14
MAX_KEYS = 200_000
MAX_PER_KEY = 1_000


def descriptor_key(merchant: str | None, description: str | None) -> str:
    """The merchant exactly as printed, case and spacing aside. Not ``features.merchant_key``,
    which folds store numbers away so one chain is one habit: a compromised terminal is one
    store, "Terminal 00042" or "SHELL #4411", not every Shell."""
    return " ".join((merchant or description or "").lower().split())


@dataclass(frozen=True)
class Confirmation:
    user_id: str
    account_id: str
    merchant: str  # as ``descriptor_key`` makes it
    time: float  # the fraudulent transaction's event time, epoch seconds


@dataclass(frozen=True)
class FraudSignals:
    own_at_merchant: int
    shared_at_merchant: int
    on_account: int
    merchant_days_since: float = NEVER_DAYS
    account_days_since: float = NEVER_DAYS
    merchant_fraud_share: float = 0.0

    def features(self) -> list[float]:
        return [
            math.log1p(self.own_at_merchant),
            math.log1p(self.shared_at_merchant),
            math.log1p(self.on_account),
            self.merchant_days_since,
            self.account_days_since,
            self.merchant_fraud_share,
        ]


NO_SIGNALS = FraudSignals(0, 0, 0)


def _day(time: float) -> int:
    return int(time // 86400)


def _days_since(now: float, times: list[float]) -> float:
    past = [when for when in times if when <= now]
    return min(NEVER_DAYS, (now - max(past)) / 86400) if past else NEVER_DAYS


def _bounded_append(
    index: OrderedDict[tuple[str, ...], deque[tuple[float, str]]],
    key: tuple[str, ...],
    item: tuple[float, str],
) -> None:
    entries = index.get(key)
    if entries is None:
        entries = index[key] = deque(maxlen=MAX_PER_KEY)
        while len(index) > MAX_KEYS:
            index.popitem(last=False)
    else:
        index.move_to_end(key)
    entries.append(item)


class ConfirmedFraud:
    """Confirmed fraud by merchant and by account, bounded per key and in keys."""

    def __init__(self) -> None:
        self._by_merchant: OrderedDict[tuple[str, ...], deque[tuple[float, str]]] = OrderedDict()
        self._by_account: OrderedDict[tuple[str, ...], deque[tuple[float, str]]] = OrderedDict()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        # (user, merchant) -> {day: the owner's transactions there that day}
        self._traffic: OrderedDict[tuple[str, str], dict[int, int]] = OrderedDict()
        self.latest = -math.inf  # the newest event time asked about

    def confirm(self, confirmation: Confirmation, transaction_id: str) -> bool:
        """Remember one confirmed fraud; the same transaction twice counts once. Whether it was
        new."""
        key = (confirmation.user_id, transaction_id)
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > MAX_KEYS * 5:
            self._seen.popitem(last=False)
        item = (confirmation.time, confirmation.user_id)
        _bounded_append(self._by_merchant, (confirmation.merchant,), item)
        _bounded_append(self._by_account, (confirmation.user_id, confirmation.account_id), item)
        return True

    def count_transaction(self, user_id: str, merchant: str, time: float) -> None:
        """Count one of the owner's transactions at ``merchant`` (days older than the window
        fall away)."""
        days = self._traffic_of(user_id, merchant)
        today = _day(time)
        days[today] = days.get(today, 0) + 1
        for old in [day for day in days if day <= today - MERCHANT_DAYS]:
            del days[old]

    def set_traffic(self, user_id: str, merchant: str, counts: dict[int, int]) -> None:
        """The owner's transactions at ``merchant`` per day (``time // 86400``), as counted
        elsewhere: they replace what was counted here."""
        self._traffic_of(user_id, merchant)  # bounds and orders the keys
        # Replaced, not updated in place: the scoring thread may be summing the old one.
        self._traffic[(user_id, merchant)] = dict(counts)

    def _traffic_of(self, user_id: str, merchant: str) -> dict[int, int]:
        key = (user_id, merchant)
        days = self._traffic.get(key)
        if days is None:
            days = self._traffic[key] = {}
            while len(self._traffic) > MAX_KEYS:
                self._traffic.popitem(last=False)
        else:
            self._traffic.move_to_end(key)
        return days

    def merchants_with_fraud(self, since: float) -> dict[tuple[str, str], float]:
        """(user, merchant) -> the newest fraud the owner confirmed there, for those newer
        than ``since``."""
        newest: dict[tuple[str, str], float] = {}
        for (merchant,), entries in self._by_merchant.items():
            for when, user in entries:
                if when >= since and when > newest.get((user, merchant), -math.inf):
                    newest[(user, merchant)] = when
        return newest

    def _share(self, user_id: str, merchant: str, confirmed: int, now: float) -> float:
        if not confirmed:
            return 0.0
        days = self._traffic.get((user_id, merchant), {})
        today = _day(now)
        trade = sum(n for day, n in days.items() if today - MERCHANT_DAYS < day <= today)
        return confirmed / max(trade, confirmed)

    def signals(self, user_id: str, account_id: str, merchant: str, now: float) -> FraudSignals:
        """What confirmed fraud says about a transaction at event time ``now``."""
        self.latest = max(self.latest, now)
        if not self._seen:
            return NO_SIGNALS
        own: list[float] = []
        shared = 0
        others: set[str] = set()
        for when, user in self._by_merchant.get((merchant,), ()):
            if user == user_id:
                own.append(when)
            elif now - MERCHANT_DAYS * 86400 <= when <= now:
                shared += 1
                others.add(user)
        account = [when for when, _ in self._by_account.get((user_id, account_id), ())]
        own_recent = sum(1 for when in own if now - MERCHANT_DAYS * 86400 <= when <= now)
        return FraudSignals(
            own_at_merchant=own_recent,
            shared_at_merchant=shared if shareable(len(others)) else 0,
            on_account=sum(1 for when in account if now - ACCOUNT_DAYS * 86400 <= when <= now),
            merchant_days_since=_days_since(now, own),
            account_days_since=_days_since(now, account),
            merchant_fraud_share=self._share(user_id, merchant, own_recent, now),
        )
