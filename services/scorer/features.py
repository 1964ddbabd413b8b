"""Per-transaction features against the account's own bounded history.

State is kept per (user, account), so any scorer instance that owns the account's partition computes
the same features; after a restart it is rebuilt by replaying the account's stored transactions in
the order they were processed. Every structure here is bounded.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime

from schemas import Direction, TransactionEvent
from services.core.money import dollar_scale
from services.core.text import merchant_key_text

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
    "recent_unusual_amounts",
    "amount_z_account_linear",
    "log_daily_rate",
)
N_FEATURES = len(FEATURE_NAMES)

DEFAULT_WINDOW = 256  # transactions per account the features look back on
MAX_RECENT = 64  # latest transactions searched for duplicates
MAX_AMOUNTS_PER_CATEGORY = 128
MAX_AMOUNTS_PER_MERCHANT = 12
MAX_AMOUNTS_PER_ACCOUNT = 128
MIN_CATEGORY_HISTORY = 5
MIN_MERCHANT_HISTORY = 3
MIN_HOME_HISTORY = 10
NO_PREVIOUS_SECONDS = 30 * 86400.0
# The spread of log amounts an account's habit is assumed to have before its own history says
# otherwise, and how many transactions of its own that prior weighs: a few alike amounts are not
# yet a habit that a slightly larger one breaks.
PRIOR_LOG_SPREAD = 0.8
PRIOR_WEIGHT = 10
# The same amount in dollars rather than in log: a tail that log scale compresses (amounts spread
# evenly around a habit, inflated several times by a thief) stands out in it. Its spread shrinks
# towards the median itself while the account is young.
PRIOR_LINEAR_SPREAD = 1.0
MAX_LINEAR_Z = 50.0
# A compromised card is used for days: an amount far above the account's habit makes the next
# ones on the same account more likely fraud too. The features count the account's debits of at
# least this robust z in the past week.
UNUSUAL_AMOUNT_Z = 3.0
UNUSUAL_WITHIN_SECONDS = 7 * 86400.0
MAX_UNUSUAL = 32
# How busy the account is: its transactions a day over its window. Three purchases in an hour
# are news on an account that makes one a day and ordinary on one that makes ten; the profile
# reads the account's pace against this. A young account is assumed to make one a day, the
# value that rows stored before this feature read too; the window's span is at least an hour, so
# a first burst cannot call itself a habit.
DEFAULT_DAILY_RATE = 1.0
MIN_RATE_SPAN_SECONDS = 3600.0
_WEEKDAY_SIN = [math.sin(2 * math.pi * day / 7) for day in range(7)]
_WEEKDAY_COS = [math.cos(2 * math.pi * day / 7) for day in range(7)]
UNCATEGORIZED = "Uncategorized"


def merchant_key(event: TransactionEvent) -> str:
    return merchant_key_text(event.merchant or event.description)


class Entry:
    """One transaction's contribution to its account's window, and the parsed facts its features
    start from (parsed once: the merchant's normalized key alone costs microseconds)."""

    __slots__ = (
        "amount",
        "category",
        "country",
        "currency",
        "dollars",
        "hour",
        "log_amount",
        "merchant",
        "per_dollar",
        "time",
        "unusual",
    )

    def __init__(self, event: TransactionEvent):
        self.time = event.timestamp.timestamp()
        self.amount = float(event.amount)  # in its own currency: what explanations say
        # Compared in about-dollars, with everyone's and across an account's currencies: a
        # ¥1,200 coffee is not a $1,200 purchase (``dollar_scale``).
        self.per_dollar = dollar_scale(event.currency)
        self.dollars = self.amount / self.per_dollar
        self.log_amount = math.log1p(self.dollars)
        self.merchant = merchant_key(event)
        self.category = event.category or UNCATEGORIZED
        self.hour = event.timestamp.hour
        self.country = event.country
        self.currency = event.currency
        self.unusual = False  # a debit far above the account's habit; set once it is compared


class _Series:
    """The latest ``cap`` entries of one kind, with their log amounts (or, ``linear``, their
    amounts) kept sorted, so the median and MAD cost a walk over half the series instead of two
    sorts."""

    __slots__ = ("cap", "entries", "linear", "sorted")

    def __init__(self, cap: int, linear: bool = False):
        self.cap = cap
        self.linear = linear
        self.entries: deque[Entry] = deque()
        self.sorted: list[float] = []

    def _value(self, entry: Entry) -> float:
        return entry.dollars if self.linear else entry.log_amount

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, entry: Entry) -> None:
        if len(self.entries) == self.cap:
            self._drop_oldest()
        self.entries.append(entry)
        insort(self.sorted, self._value(entry))

    def drop_if_oldest(self, entry: Entry) -> None:
        if self.entries and self.entries[0] is entry:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        oldest = self.entries.popleft()
        del self.sorted[bisect_left(self.sorted, self._value(oldest))]


def _increment(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _decrement(counts: dict[str, int], key: str | None) -> None:
    if key is None:
        return
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]


class AccountState:
    """The account's last ``window`` transactions, with running aggregates over exactly them.

    Everything is a function of that window alone, in processing order, so replaying the same
    stored transactions rebuilds the same state; memory per account is bounded by the window.
    """

    def __init__(self, window: int = DEFAULT_WINDOW):
        self.window_size = window
        self.window: deque[Entry] = deque()
        self.recent_amounts = _Series(MAX_AMOUNTS_PER_ACCOUNT)
        self.recent_linear = _Series(MAX_AMOUNTS_PER_ACCOUNT, linear=True)
        self.by_category: dict[str, _Series] = {}
        self.by_merchant: dict[str, _Series] = {}
        # Plain dicts, not Counters: compiled, their lookups are native calls.
        self.merchants: dict[str, int] = {}
        self.merchant_last_seen: dict[str, float] = {}
        self.categories: dict[str, int] = {}
        self.hours = [0] * 24
        self.countries: dict[str, int] = {}
        self.currencies: dict[str, int] = {}
        self.unusual_times: deque[float] = deque(maxlen=MAX_UNUSUAL)

    @property
    def n(self) -> int:
        return len(self.window)

    def home(self, counts: dict[str, int]) -> str | None:
        if self.n < MIN_HOME_HISTORY or not counts:
            return None
        return max(counts, key=counts.__getitem__)  # as most_common(1): the first of equals

    def add(self, entry: Entry) -> None:
        self.window.append(entry)
        self.recent_amounts.append(entry)
        self.recent_linear.append(entry)
        for index, key, cap in (
            (self.by_category, entry.category, MAX_AMOUNTS_PER_CATEGORY),
            (self.by_merchant, entry.merchant, MAX_AMOUNTS_PER_MERCHANT),
        ):
            series = index.get(key)
            if series is None:
                series = index[key] = _Series(cap)
            series.append(entry)
        _increment(self.merchants, entry.merchant)
        self.merchant_last_seen[entry.merchant] = entry.time
        _increment(self.categories, entry.category)
        self.hours[entry.hour] += 1
        if entry.country:
            _increment(self.countries, entry.country)
        _increment(self.currencies, entry.currency)
        if entry.unusual:
            self.unusual_times.append(entry.time)
        if len(self.window) > self.window_size:
            self._evict(self.window.popleft())

    def _evict(self, old: Entry) -> None:
        self.recent_amounts.drop_if_oldest(old)
        self.recent_linear.drop_if_oldest(old)
        for index, key in ((self.by_category, old.category), (self.by_merchant, old.merchant)):
            series = index.get(key)
            if series is not None:
                series.drop_if_oldest(old)
                if not series:
                    del index[key]
        _decrement(self.merchants, old.merchant)
        if old.merchant not in self.merchants:
            del self.merchant_last_seen[old.merchant]
        _decrement(self.categories, old.category)
        self.hours[old.hour] -= 1
        _decrement(self.countries, old.country)
        _decrement(self.currencies, old.currency)


@dataclass(frozen=True)
class FeatureContext:
    """The facts behind the features, in the words an explanation needs."""

    category: str
    amount: float
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
    daily_rate: float = DEFAULT_DAILY_RATE  # the account's transactions a day over its window
    recent_unusual: int = 0  # the account's unusual debits in the past week; 0 for money in


class FeatureExtractor:
    """Computes features for a transaction, then folds it into its account's window."""

    def __init__(self, max_accounts: int = 20_000, window: int = DEFAULT_WINDOW):
        self._accounts: OrderedDict[tuple[str, str], AccountState] = OrderedDict()
        self._max_accounts = max_accounts
        self.window = window

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
            state = self._accounts[account] = AccountState(self.window)
            while len(self._accounts) > self._max_accounts:
                self._accounts.popitem(last=False)  # least recently seen; rebuilt if it returns
        else:
            self._accounts.move_to_end(account)
        return state

    def transform(self, event: TransactionEvent) -> tuple[list[float], FeatureContext]:
        """Features of ``event`` against the window so far; the event then joins the window."""
        state = self.state((event.user_id, event.account_id))
        entry = Entry(event)
        features, context = compute_features(state, event, entry)
        state.add(entry)
        return features, context

    def learn(self, event: TransactionEvent) -> None:
        """Fold ``event`` into its window without computing features (replaying history); only
        whether its amount was unusual, which later features count."""
        state = self.state((event.user_id, event.account_id))
        entry = Entry(event)
        entry.unusual = _is_unusual(event, _account_z(state, entry))
        state.add(entry)


def _median(values: list[float]) -> float:
    n = len(values)
    middle = n // 2
    return values[middle] if n % 2 else (values[middle - 1] + values[middle]) / 2


def _median_absolute_deviation(values: list[float], median: float) -> float:
    """MAD of sorted ``values``. The deviations below and above the median are two sorted runs,
    so the middle deviation is a k-th smallest of two sorted arrays: a binary search, O(log n)."""
    n = len(values)
    split = bisect_left(values, median)
    middle = _kth_deviation(values, median, split, n // 2 + 1)
    if n % 2:
        return middle
    return (_kth_deviation(values, median, split, n // 2) + middle) / 2


def _kth_deviation(values: list[float], median: float, split: int, k: int) -> float:
    """The k-th smallest (1-based) of |v - median|; ``values[:split]`` lie below the median."""
    below, above = split, len(values) - split
    lo, hi = max(0, k - above), min(k, below)
    while lo < hi:  # find how many of the k smallest come from below the median
        taken = (lo + hi) // 2
        if median - values[split - 1 - taken] < values[split + k - taken - 1] - median:
            lo = taken + 1
        else:
            hi = taken
    from_above = k - lo
    return max(
        median - values[split - lo] if lo > 0 else -math.inf,
        values[split + from_above - 1] - median if from_above > 0 else -math.inf,
    )


def _robust_z(
    log_amount: float, series: _Series | None, min_history: int = MIN_CATEGORY_HISTORY
) -> tuple[float, float | None]:
    """Robust z-score (median/MAD) of a log amount against a series, and the usual amount (in
    about-dollars, as the series holds it)."""
    if series is None or len(series) < min_history:
        return 0.0, None
    median = _median(series.sorted)
    z = _shrunk_z(log_amount, series.sorted, median, PRIOR_WEIGHT * PRIOR_LOG_SPREAD**2, 0.1, 20.0)
    return z, math.expm1(median)


def _shrunk_z(
    value: float,
    values: list[float],
    median: float,
    prior_squares: float,
    floor: float,
    limit: float,
) -> float:
    """Robust z of ``value`` against sorted ``values`` (their median given), the MAD shrunk
    towards a prior spread over the first ``PRIOR_WEIGHT`` rows (``prior_squares``: that weight
    times the prior spread squared), at least ``floor``, and clipped to plus or minus ``limit``."""
    n = len(values)
    mad = _median_absolute_deviation(values, median) * 1.4826
    spread = math.sqrt((n * mad * mad + prior_squares) / (n + PRIOR_WEIGHT))
    z = (value - median) / max(spread, floor)
    return min(max(z, -limit), limit)


def _account_z(state: AccountState, entry: Entry) -> float:
    """Robust z of the amount against all the account's recent amounts."""
    return _robust_z(entry.log_amount, state.recent_amounts)[0]


def _linear_account_z(state: AccountState, entry: Entry) -> float:
    """Robust z of the amount itself against the account's recent amounts, its spread shrunk
    towards ``PRIOR_LINEAR_SPREAD`` times the median over the first ``PRIOR_WEIGHT`` rows."""
    series = state.recent_linear
    if len(series) < MIN_CATEGORY_HISTORY:
        return 0.0
    median = _median(series.sorted)
    prior = PRIOR_LINEAR_SPREAD * median
    floor = 0.01 * max(median, 1.0)
    return _shrunk_z(
        entry.dollars, series.sorted, median, PRIOR_WEIGHT * prior * prior, floor, MAX_LINEAR_Z
    )


def _amount_scores(
    state: AccountState, entry: Entry
) -> tuple[float, float, float, float | None, bool]:
    """Robust z of the amount against the account's category, the merchant and all its recent
    amounts; the usual amount it is compared with (in the transaction's currency), and whether
    that is the merchant's."""
    robust_z, usual = _robust_z(entry.log_amount, state.by_category.get(entry.category))
    merchant_z, merchant_usual = _robust_z(
        entry.log_amount, state.by_merchant.get(entry.merchant), MIN_MERCHANT_HISTORY
    )
    account_z = _account_z(state, entry)
    if merchant_usual is not None:  # the merchant's own habit says more than the category's
        return robust_z, merchant_z, account_z, merchant_usual * entry.per_dollar, True
    return robust_z, merchant_z, account_z, _in_currency(usual, entry), False


def _in_currency(dollars: float | None, entry: Entry) -> float | None:
    return dollars * entry.per_dollar if dollars is not None else None


def _is_unusual(event: TransactionEvent, account_z: float) -> bool:
    return event.direction is not Direction.credit and account_z >= UNUSUAL_AMOUNT_Z


def _recent_unusual(state: AccountState, now: float) -> int:
    """The account's unusual debits in the week before ``now``."""
    count = 0
    for when in reversed(state.unusual_times):
        if now - when > UNUSUAL_WITHIN_SECONDS:
            break
        count += when <= now
    return count


def _recent_activity(
    window: deque[Entry], now: float, merchant: str, amount: float
) -> tuple[int, int, bool]:
    """Transactions within the hour and the day before ``now``, and whether one of the most
    recent was the same amount at the same merchant (a possible duplicate)."""
    velocity_1h = velocity_24h = 0
    duplicate = False
    for depth, earlier in enumerate(reversed(window)):
        age = now - earlier.time
        if age > 86400:
            break
        if age >= 0:
            velocity_24h += 1
            velocity_1h += age <= 3600
            if depth < MAX_RECENT and earlier.merchant == merchant:
                duplicate = duplicate or abs(earlier.amount - amount) < 0.005
    return velocity_1h, velocity_24h, duplicate


def _daily_rate(window: deque[Entry], now: float) -> float:
    """The account's transactions a day over its window, before ``now``."""
    if len(window) < MIN_HOME_HISTORY:
        return DEFAULT_DAILY_RATE
    span = max(now - window[0].time, MIN_RATE_SPAN_SECONDS)
    return len(window) * 86400.0 / span


def _habits(state: AccountState, entry: Entry) -> tuple[float, int, bool]:
    """The account's share of transactions around this hour, its visits to this merchant, and
    whether this is the first. An account with too short a history has no habits to break yet:
    its hour and its new merchants stay neutral, so a new account's first weeks are not
    anomalies."""
    n, hours, h = state.n, state.hours, entry.hour
    young = n < MIN_HOME_HISTORY
    hour_share = 1.0 if young else (hours[h - 1] + hours[h] + hours[(h + 1) % 24]) / n
    seen = state.merchants.get(entry.merchant, 0)
    return hour_share, seen, seen == 0 and not young


def _abroad(
    state: AccountState, event: TransactionEvent
) -> tuple[str | None, str | None, bool, bool]:
    """The account's home country and currency, and whether ``event`` is outside either."""
    home_country = state.home(state.countries)
    home_currency = state.home(state.currencies)
    foreign_country = bool(event.country and home_country and event.country != home_country)
    foreign_currency = bool(home_currency and event.currency != home_currency)
    return home_country, home_currency, foreign_country, foreign_currency


def compute_features(
    state: AccountState, event: TransactionEvent, entry: Entry | None = None
) -> tuple[list[float], FeatureContext]:
    """The feature row of ``event`` (in ``FEATURE_NAMES`` order) and the facts behind it."""
    entry = entry or Entry(event)
    category, merchant, now, amount, log_amount = (
        entry.category,
        entry.merchant,
        entry.time,
        entry.amount,
        entry.log_amount,
    )
    local = event.timestamp
    window = state.window

    robust_z, merchant_z, account_z, usual, by_merchant = _amount_scores(state, entry)
    entry.unusual = _is_unusual(event, account_z)
    ratio = amount / max(usual, 0.01) if usual is not None else None

    gap = max(0.0, now - window[-1].time) if window else NO_PREVIOUS_SECONDS
    velocity_1h, velocity_24h, duplicate = _recent_activity(window, now, merchant, amount)
    last_here = state.merchant_last_seen.get(merchant)
    since_here = max(0.0, now - last_here) if last_here is not None else NO_PREVIOUS_SECONDS

    hour = entry.hour + local.minute / 60
    weekday = local.weekday()
    n = state.n
    hour_share, seen, merchant_new = _habits(state, entry)
    home_country, home_currency, foreign_country, foreign_currency = _abroad(state, event)
    daily_rate = _daily_rate(window, now)
    recent_unusual = _recent_unusual(state, now)

    features = [
        log_amount,
        robust_z,
        math.sin(2 * math.pi * hour / 24),
        math.cos(2 * math.pi * hour / 24),
        _WEEKDAY_SIN[weekday],
        _WEEKDAY_COS[weekday],
        math.log1p(gap),
        velocity_1h,
        velocity_24h,
        float(merchant_new),
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
        float(recent_unusual),
        _linear_account_z(state, entry),
        math.log(daily_rate),
    ]
    context = FeatureContext(
        category=category,
        amount=amount,
        amount_basis=(event.merchant or merchant) if by_merchant else category,
        usual_amount=usual,
        amount_ratio=ratio,
        merchant=merchant,
        merchant_new=merchant_new,
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
        daily_rate=daily_rate,
        recent_unusual=0 if event.direction is Direction.credit else recent_unusual,
    )
    return features, context
