"""Per-transaction features against the account's own bounded history.

State is kept per (user, account), so any scorer instance that owns the account's partition computes
the same features; after a restart it is rebuilt by replaying the account's stored transactions in
the order they were processed. Every structure here is bounded.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
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
)
N_FEATURES = len(FEATURE_NAMES)

MAX_TIMES = 512  # enough for any sane 24 h velocity
MAX_AMOUNTS_PER_CATEGORY = 128
MAX_CATEGORIES = 64
MAX_MERCHANTS = 512
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
    usual_amount: float | None
    amount_ratio: float | None
    merchant: str
    merchant_new: bool
    local_time: datetime
    hour_share: float
    velocity_1h: int
    velocity_24h: int
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


def compute_features(
    state: AccountState, event: TransactionEvent
) -> tuple[np.ndarray, FeatureContext]:
    category = event.category or UNCATEGORIZED
    merchant = normalize_text(event.merchant or event.description) or "unknown"
    local = event.timestamp
    now = local.timestamp()
    log_amount = math.log1p(float(event.amount))

    robust_z, usual, ratio = 0.0, None, None
    history = state.amounts.get(category)
    if history is not None and len(history) >= MIN_CATEGORY_HISTORY:
        values = np.fromiter(history, dtype=float)
        median = float(np.median(values))
        mad = float(np.median(np.abs(values - median))) * 1.4826
        robust_z = float(np.clip((log_amount - median) / max(mad, 0.1), -20.0, 20.0))
        usual = math.expm1(median)
        ratio = float(event.amount) / max(usual, 0.01)

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
        ],
        dtype=np.float64,
    )
    context = FeatureContext(
        category=category,
        usual_amount=usual,
        amount_ratio=ratio,
        merchant=merchant,
        merchant_new=seen == 0 and n > 0,
        local_time=local,
        hour_share=hour_share,
        velocity_1h=velocity_1h,
        velocity_24h=velocity_24h,
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
    _bounded_increment(
        state.merchants,
        normalize_text(event.merchant or event.description) or "unknown",
        MAX_MERCHANTS,
    )
    _bounded_increment(state.categories, category, MAX_CATEGORIES)
    state.hours[event.timestamp.hour] += 1
    if event.country:
        state.countries[event.country] += 1
    state.currencies[event.currency] += 1
    state.n += 1
