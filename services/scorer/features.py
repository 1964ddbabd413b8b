"""Per-transaction features against the account's own bounded history.

State is kept per (user, account), so any scorer instance that owns the account's partition computes
the same features; after a restart it is rebuilt by replaying the account's stored transactions in
the order they were processed. Every structure here is bounded.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from schemas import Direction, TransactionEvent
from services.core.text import normalize_text

FEATURE_NAMES: tuple[str, ...] = (
    "log_amount",
    "amount_robust_z",
    "hour_sin",
    "hour_cos",
    "weekday_sin",
    "weekday_cos",
    "log_seconds_since_previous",
    "velocity_1h",
    "velocity_24h",
    "merchant_new",
    "merchant_frequency",
    "category_frequency",
    "hour_share",
    "foreign_country",
    "foreign_currency",
    "is_credit",
    "log_history_size",
    "duplicate_within_24h",
    "log_seconds_since_same_merchant",
    "amount_z_account",
    "amount_z_merchant",
)
N_FEATURES = len(FEATURE_NAMES)

MAX_TIMES = 512  # enough for any sane 24 h velocity
MAX_RECENT = 64  # (time, merchant, amount) of the latest transactions, for duplicates
MAX_AMOUNTS_PER_CATEGORY = 128
MAX_CATEGORIES = 64
MAX_MERCHANTS = 512
MAX_MERCHANT_AMOUNT_SERIES = 32  # merchants whose amounts are remembered...
MAX_AMOUNTS_PER_MERCHANT = 12  # ...and how many of each
MIN_CATEGORY_HISTORY = 5
MIN_HOME_HISTORY = 10
NO_PREVIOUS_SECONDS = 30 * 86400.0
UNCATEGORIZED = "Uncategorized"


def _bounded_increment(counts: OrderedDict[str, int], key: str, limit: int) -> None:
    counts[key] = counts.get(key, 0) + 1
    counts.move_to_end(key)
    while len(counts) > limit:
        counts.popitem(last=False)


@dataclass
class AccountState:
    """What the scorer remembers about one account: a few hundred numbers at most."""

    times: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_TIMES))
    recent: deque[tuple[float, str, float]] = field(
        default_factory=lambda: deque(maxlen=MAX_RECENT)
    )
    all_amounts: deque[float] = field(
        default_factory=lambda: deque(maxlen=MAX_AMOUNTS_PER_CATEGORY)
    )
    merchant_last_seen: OrderedDict[str, float] = field(default_factory=OrderedDict)
    merchant_amounts: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)
    amounts: dict[str, deque[float]] = field(default_factory=dict)
    merchants: OrderedDict[str, int] = field(default_factory=OrderedDict)
    categories: OrderedDict[str, int] = field(default_factory=OrderedDict)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    countries: Counter[str] = field(default_factory=Counter)
    currencies: Counter[str] = field(default_factory=Counter)
    n: int = 0

    def home(self, counts: Counter[str]) -> str | None:
        if self.n < MIN_HOME_HISTORY or not counts:
            return None
        return counts.most_common(1)[0][0]


@dataclass(frozen=True)
class FeatureContext:
    """The facts behind the features, in the words an explanation needs."""

    category: str
    amount_basis: str  # what the usual amount is of: the merchant, or else the category
    usual_amount: float | None
    amount_ratio: float | None
    merchant: str
    merchant_new: bool
    local_time: datetime
    hour_share: float
    velocity_1h: int
    velocity_24h: int
    duplicate_of_recent: bool
    country: str | None
    home_country: str | None
    currency: str
    home_currency: str | None
    history_size: int


class FeatureExtractor:
    """Computes features for a transaction, then folds it into its account's history."""

    def __init__(self, max_accounts: int = 100_000):
        self._accounts: OrderedDict[tuple[str, str], AccountState] = OrderedDict()
        self._max_accounts = max_accounts

    def __contains__(self, account: tuple[str, str]) -> bool:
        return account in self._accounts

    def __len__(self) -> int:
        return len(self._accounts)

    def known(self) -> list[tuple[str, str]]:
        return list(self._accounts)

    def forget(self, account: tuple[str, str]) -> None:
        self._accounts.pop(account, None)

    def state(self, account: tuple[str, str]) -> AccountState:
        state = self._accounts.get(account)
        if state is None:
            state = self._accounts[account] = AccountState()
            while len(self._accounts) > self._max_accounts:
                self._accounts.popitem(last=False)  # least recently seen; rebuilt if it returns
        else:
            self._accounts.move_to_end(account)
        return state

    def transform(self, event: TransactionEvent) -> tuple[np.ndarray, FeatureContext]:
        """Features of ``event`` against history so far; the history is then updated."""
        state = self.state((event.user_id, event.account_id))
        features, context = compute_features(state, event)
        update_state(state, event)
        return features, context

    def learn(self, event: TransactionEvent) -> None:
        """Fold ``event`` into history without computing features (replaying stored history)."""
        update_state(self.state((event.user_id, event.account_id)), event)


def _robust_z(
    log_amount: float, history: Iterable[float], min_history: int = MIN_CATEGORY_HISTORY
) -> tuple[float, float | None]:
    """Robust z-score (median/MAD) of a log amount against a history, and the usual amount."""
    values = np.fromiter(history, dtype=float)
    if len(values) < min_history:
        return 0.0, None
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * 1.4826
    return float(np.clip((log_amount - median) / max(mad, 0.1), -20.0, 20.0)), math.expm1(median)


def compute_features(
    state: AccountState, event: TransactionEvent
) -> tuple[np.ndarray, FeatureContext]:
    category = event.category or UNCATEGORIZED
    merchant = normalize_text(event.merchant or event.description) or "unknown"
    local = event.timestamp
    now = local.timestamp()
    log_amount = math.log1p(float(event.amount))

    robust_z, usual = _robust_z(log_amount, state.amounts.get(category, ()))
    ratio = float(event.amount) / max(usual, 0.01) if usual is not None else None

    previous = state.times[-1] if state.times else None
    gap = max(0.0, now - previous) if previous is not None else NO_PREVIOUS_SECONDS
    velocity_1h = velocity_24h = 0
    for t in reversed(state.times):
        age = now - t
        if age > 86400:
            break
        if age >= 0:
            velocity_24h += 1
            velocity_1h += age <= 3600

    hour = local.hour + local.minute / 60
    bucket = local.hour
    n = state.n
    hour_share = sum(state.hours[(bucket + d) % 24] for d in (-1, 0, 1)) / n if n else 1.0
    seen = state.merchants.get(merchant, 0)
    amount = float(event.amount)
    duplicate = any(
        0 <= now - t <= 86400 and m == merchant and abs(a - amount) < 0.005
        for t, m, a in state.recent
    )
    last_here = state.merchant_last_seen.get(merchant)
    since_here = max(0.0, now - last_here) if last_here is not None else NO_PREVIOUS_SECONDS
    account_z, _ = _robust_z(log_amount, state.all_amounts)
    merchant_z, merchant_usual = _robust_z(log_amount, state.merchant_amounts.get(merchant, ()), 3)
    if merchant_usual is not None:  # the merchant's own habit says more than the category's
        usual, ratio = merchant_usual, amount / max(merchant_usual, 0.01)
    home_country = state.home(state.countries)
    home_currency = state.home(state.currencies)
    foreign_country = bool(event.country and home_country and event.country != home_country)
    foreign_currency = bool(home_currency and event.currency != home_currency)

    features = np.array(
        [
            log_amount,
            robust_z,
            math.sin(2 * math.pi * hour / 24),
            math.cos(2 * math.pi * hour / 24),
            math.sin(2 * math.pi * local.weekday() / 7),
            math.cos(2 * math.pi * local.weekday() / 7),
            math.log1p(gap),
            velocity_1h,
            velocity_24h,
            float(seen == 0 and n > 0),
            seen / n if n else 0.0,
            state.categories.get(category, 0) / n if n else 0.0,
            hour_share,
            float(foreign_country),
            float(foreign_currency),
            float(event.direction is Direction.credit),
            math.log1p(n),
            float(duplicate),
            math.log1p(since_here),
            account_z,
            merchant_z,
        ],
        dtype=np.float64,
    )
    context = FeatureContext(
        category=category,
        amount_basis=(event.merchant or merchant) if merchant_usual is not None else category,
        usual_amount=usual,
        amount_ratio=ratio,
        merchant=merchant,
        merchant_new=seen == 0 and n > 0,
        local_time=local,
        hour_share=hour_share,
        velocity_1h=velocity_1h,
        velocity_24h=velocity_24h,
        duplicate_of_recent=duplicate,
        country=event.country,
        home_country=home_country,
        currency=event.currency,
        home_currency=home_currency,
        history_size=n,
    )
    return features, context


def update_state(state: AccountState, event: TransactionEvent) -> None:
    category = event.category or UNCATEGORIZED
    state.times.append(event.timestamp.timestamp())
    amounts = state.amounts.get(category)
    if amounts is None:
        if len(state.amounts) >= MAX_CATEGORIES:
            state.amounts.pop(next(iter(state.amounts)))
        amounts = state.amounts[category] = deque(maxlen=MAX_AMOUNTS_PER_CATEGORY)
    amounts.append(math.log1p(float(event.amount)))
    state.all_amounts.append(math.log1p(float(event.amount)))
    merchant = normalize_text(event.merchant or event.description) or "unknown"
    now = event.timestamp.timestamp()
    state.recent.append((now, merchant, float(event.amount)))
    state.merchant_last_seen[merchant] = now
    series = state.merchant_amounts.get(merchant)
    if series is None:
        series = state.merchant_amounts[merchant] = deque(maxlen=MAX_AMOUNTS_PER_MERCHANT)
    series.append(math.log1p(float(event.amount)))
    state.merchant_amounts.move_to_end(merchant)
    while len(state.merchant_amounts) > MAX_MERCHANT_AMOUNT_SERIES:
        state.merchant_amounts.popitem(last=False)
    state.merchant_last_seen.move_to_end(merchant)
    while len(state.merchant_last_seen) > MAX_MERCHANTS:
        state.merchant_last_seen.popitem(last=False)
    _bounded_increment(state.merchants, merchant, MAX_MERCHANTS)
    _bounded_increment(state.categories, category, MAX_CATEGORIES)
    state.hours[event.timestamp.hour] += 1
    if event.country:
        state.countries[event.country] += 1
    state.currencies[event.currency] += 1
    state.n += 1
