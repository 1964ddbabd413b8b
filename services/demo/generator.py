"""Deterministic, realistic personal-finance histories with labelled anomalies.

Each user has a persona: an employer, a home, bills and subscriptions on schedules, favourite
shops and places to eat with weekly rhythm, seasonal peaks (holidays, summer travel), refunds and
uncategorized lines. Anomalies of several kinds are injected and labelled, so the detectors can be
evaluated on the same data the dashboard shows.

Dates: a history covers the whole local days from ``start`` up to ``end`` (exclusive), in the
persona's own timezone, and nothing lands on or after ``end``: a refund or a duplicate that would
fall past it is not emitted. ``end`` is explicit wherever the result must not depend on the
calendar (tests, benchmarks, evaluations); only the CLI's default takes it from today.

Recurring payments (salary, rent, utilities, subscriptions) print one descriptor per persona, as a
bank feed does for a standing order or a direct debit, and none of them skips a month: a gap in
them is not part of the demo. (Earlier versions drew a random descriptor for each payment, so a
month's rent could print "GREYSTAR RENT PAYMENT" and the next "GREYSTAR PROPERTY MGMT", which
looked like a skipped month to anything that groups by merchant.)

Drift: every persona takes up a gym habit (Fitness: the gym, a juice, a class) three weeks before
``end``, so the drift watcher has a real change to find, with Fitness as its top contributor.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from schemas.currency import minor_units
from services.analytics.months import month_start
from services.demo import merchants as m

ANOMALY_KINDS = (
    "amount_spike",
    "new_merchant_odd_hour",
    "card_testing",
    "foreign_country",
    "duplicate_charge",
)
TIMEZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
UNCATEGORIZED_RATE = 0.08
ANOMALY_RATE = 0.01
HABIT_DAYS = 21  # the planted drift starts this many days before the end


@dataclass(frozen=True)
class DemoRecord:
    user_id: str
    transaction: dict[str, Any]  # the JSON body ingest accepts
    anomaly: str | None = None  # the injected kind, or None for normal activity


@dataclass
class Persona:
    user_id: str
    tz: ZoneInfo
    employer: m.Merchant
    salary: float
    rent: m.Merchant
    rent_amount: float
    utilities: list[m.Merchant]
    subscriptions: list[tuple[m.Merchant, int]]  # merchant, day of month
    groceries: list[m.Merchant]
    dining: list[m.Merchant]
    transport: list[m.Merchant]
    shopping: list[m.Merchant]
    scale: float  # how lavishly this person spends
    trips: list[tuple[date, int, bool]] = field(default_factory=list)  # start, nights, abroad


def default_end(now: datetime | None = None) -> date:
    """The first day of the month, as of a day before ``now`` (UTC now by default).

    Stable within a month, so a seed reproduces. The day's lag keeps every row in the past in
    every timezone: the last row's local day ends before ``end`` + 1 day in UTC. Only the CLI
    relies on the default; tests, benchmarks and evaluations pass an explicit end.
    """
    return ((now or datetime.now(UTC)) - timedelta(days=1)).date().replace(day=1)


def _months_before(end: date, months: int) -> date:
    return month_start(end, -months).date()


def _pick(rng: np.random.Generator, items: list[Any], k: int) -> list[Any]:
    idx = rng.choice(len(items), size=min(k, len(items)), replace=False)
    return [items[i] for i in sorted(idx)]


def make_persona(rng: np.random.Generator, index: int, start: date, end: date) -> Persona:
    subs = _pick(rng, m.SUBSCRIPTIONS, int(rng.integers(2, 5)))
    persona = Persona(
        user_id=f"demo-{index + 1:04d}",
        tz=ZoneInfo(TIMEZONES[int(rng.integers(len(TIMEZONES)))]),
        employer=m.EMPLOYERS[int(rng.integers(len(m.EMPLOYERS)))],
        salary=float(rng.uniform(2400, 5200)),
        rent=m.RENT[int(rng.integers(len(m.RENT)))],
        rent_amount=float(round(rng.uniform(1300, 3200), -1)),
        utilities=_pick(rng, m.UTILITIES, int(rng.integers(2, 4))),
        subscriptions=[(s, int(rng.integers(1, 28))) for s in subs],
        groceries=_pick(rng, m.GROCERIES, int(rng.integers(2, 4))),
        dining=_pick(rng, m.DINING, int(rng.integers(3, 6))),
        transport=_pick(rng, m.TRANSPORT, 2),
        shopping=_pick(rng, m.SHOPPING, int(rng.integers(2, 4))),
        scale=float(rng.lognormal(0, 0.25)),
    )
    days = (end - start).days
    for _ in range(max(1, days // 180)):
        offset = int(rng.integers(20, max(21, days - 10)))
        persona.trips.append(
            (start + timedelta(days=offset), int(rng.integers(3, 8)), bool(rng.random() < 0.4))
        )
    return persona


def money_text(amount: float, currency: str) -> str:
    """The amount in the currency's ISO 4217 minor units (JPY has none), never below one unit."""
    places = minor_units(currency)
    return f"{max(amount, 10.0**-places):.{places}f}"


class _UserStream:
    """Builds one user's transactions day by day."""

    def __init__(self, rng: np.random.Generator, persona: Persona):
        self.rng = rng
        self.p = persona
        self.rows: list[tuple[datetime, dict[str, Any], str | None]] = []
        self.descriptors: dict[str, str] = {}
        self.end = date.max
        self.habit_from = date.max

    def at(self, day: date, hour: float) -> datetime:
        hour = min(max(hour, 0.0), 23.99)
        h, rest = divmod(hour * 3600, 3600)
        minute, second = divmod(rest, 60)
        return datetime(
            day.year, day.month, day.day, int(h), int(minute), int(second), tzinfo=self.p.tz
        )

    def amount(self, merchant: m.Merchant, factor: float = 1.0) -> float:
        value = merchant.typical * factor
        if merchant.spread > 0:
            value *= float(self.rng.lognormal(0, merchant.spread))
        return max(0.5, round(value, 2))

    def add(
        self,
        when: datetime,
        merchant: m.Merchant,
        amount: float,
        *,
        account: str = "credit-card",
        direction: str = "debit",
        country: str = "US",
        currency: str = "USD",
        anomaly: str | None = None,
        categorized: bool | None = None,
        recurring: bool = False,
    ) -> dict[str, Any]:
        if categorized is None:
            categorized = merchant.category == "Income" or self.rng.random() >= UNCATEGORIZED_RATE
        raw = self.descriptor(merchant) if recurring else self.any_descriptor(merchant)
        tx: dict[str, Any] = {
            "account_id": account,
            "timestamp": when.isoformat(),
            "amount": money_text(amount, currency),
            "direction": direction,
            "currency": currency,
            "merchant": raw,
            "description": f"{raw} {when:%m/%d}",
            "channel": merchant.channel,
            "country": country,
        }
        if categorized:
            tx["category"] = merchant.category
        self.rows.append((when, tx, anomaly))
        return tx

    def any_descriptor(self, merchant: m.Merchant) -> str:
        """Card purchases print differently from one terminal or processor to the next."""
        return merchant.raw[int(self.rng.integers(len(merchant.raw)))]

    def descriptor(self, merchant: m.Merchant) -> str:
        """A standing order or direct debit prints the same line every time."""
        if merchant.name not in self.descriptors:
            self.descriptors[merchant.name] = self.any_descriptor(merchant)
        return self.descriptors[merchant.name]

    def traveling(self, day: date) -> tuple[bool, bool]:
        for start, nights, abroad in self.p.trips:
            if start <= day < start + timedelta(days=nights):
                return True, abroad
        return False, False

    def bills(self, day: date, season: float) -> None:
        """Salary, rent, utilities and subscriptions: standing orders and direct debits."""
        p = self.p
        last_day = calendar.monthrange(day.year, day.month)[1]
        if day.day in (1, 15):
            self.add(
                self.at(day, 6),
                p.employer,
                round(p.salary, 2),
                account="checking",
                direction="credit",
                recurring=True,
            )
        if day.day == 1:
            self.add(self.at(day, 9), p.rent, p.rent_amount, account="checking", recurring=True)
        for i, utility in enumerate(p.utilities):
            if day.day == min(5 + 6 * i, last_day):
                self.add(
                    self.at(day, 10),
                    utility,
                    self.amount(utility, season),
                    account="checking",
                    recurring=True,
                )
        for sub, sub_day in p.subscriptions:
            if day.day == sub_day:
                # Prices go up once, two months before the end, so "amount rose" has a case.
                rise = 1.15 if sub.name == "Netflix" and day >= self.price_rise_from else 1.0
                self.add(
                    self.at(day, 4 + self.rng.random()),
                    sub,
                    round(sub.typical * rise, 2),
                    recurring=True,
                )

    def day(self, day: date) -> None:
        rng, p = self.rng, self.p
        weekend = day.weekday() >= 5
        season = 1.0 + 0.25 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 355) / 365)
        holiday = 2.2 if day.month == 12 and day.day < 24 else 1.0
        self.bills(day, season)
        if day >= self.habit_from:
            self.new_habit(day)

        on_trip, abroad = self.traveling(day)
        if on_trip:
            self._trip_day(day, abroad)
            return

        if rng.random() < (0.45 if weekend else 0.2) * (1.1 if day.month in (11, 12) else 1.0):
            shop = p.groceries[int(rng.integers(len(p.groceries)))]
            hour = rng.uniform(10, 19) if weekend else rng.uniform(17.5, 20.5)
            self.add(self.at(day, hour), shop, self.amount(shop, p.scale))
        if not weekend and rng.random() < 0.55:
            coffee = next((d for d in p.dining if d.typical < 8), p.dining[0])
            self.add(self.at(day, rng.uniform(7.5, 9.5)), coffee, self.amount(coffee))
        if rng.random() < (0.35 if not weekend else 0.5):
            place = p.dining[int(rng.integers(len(p.dining)))]
            hour = rng.uniform(12, 13.5) if rng.random() < 0.5 else rng.uniform(18.5, 21.5)
            self.add(
                self.at(day, hour), place, self.amount(place, p.scale * (1.4 if weekend else 1))
            )
        if rng.random() < 0.4:
            ride = p.transport[int(rng.integers(len(p.transport)))]
            self.add(self.at(day, rng.uniform(7, 23)), ride, self.amount(ride))
        if rng.random() < 0.1 * holiday * (3 if (day.month == 11 and 23 <= day.day <= 29) else 1):
            store = p.shopping[int(rng.integers(len(p.shopping)))]
            tx = self.add(
                self.at(day, rng.uniform(9, 22)), store, self.amount(store, p.scale * holiday)
            )
            if rng.random() < 0.1:  # returned within a fortnight, unless that is past the end
                back = day + timedelta(days=int(rng.integers(3, 12)))
                if back < self.end:
                    self.add(
                        self.at(back, rng.uniform(9, 18)),
                        store,
                        float(tx["amount"]),
                        direction="credit",
                        categorized=True,
                    )
        if rng.random() < 0.05:
            shop = m.HEALTH[int(rng.integers(len(m.HEALTH)))]
            self.add(self.at(day, rng.uniform(9, 20)), shop, self.amount(shop))
        if rng.random() < (0.12 if weekend else 0.03):
            fun = m.ENTERTAINMENT[int(rng.integers(len(m.ENTERTAINMENT)))]
            self.add(self.at(day, rng.uniform(14, 22)), fun, self.amount(fun))
        if rng.random() < 0.03:
            atm = m.Merchant(
                "ATM Withdrawal", "Cash", ("ATM WITHDRAWAL 0042", "ATM W/D CHASE"), "atm", 80, 0.3
            )
            self.add(
                self.at(day, rng.uniform(9, 21)),
                atm,
                float(round(self.amount(atm), -1)) or 20.0,
                account="checking",
            )
        for start, _nights, _abroad in p.trips:
            if day == start - timedelta(days=30):
                air = m.TRAVEL[int(rng.integers(2))]
                self.add(self.at(day, rng.uniform(19, 23)), air, self.amount(air))

    def new_habit(self, day: date) -> None:
        """The planted drift: the gym most mornings, a juice after it, an evening class booked,
        from three weeks before the end, so the last week's category mix differs from the four
        before (and a week holds enough transactions for the watcher to judge it)."""
        gym, juice, classes = m.NEW_HABIT
        if self.rng.random() < 0.95:
            self.add(self.at(day, self.rng.uniform(6, 7.5)), gym, self.amount(gym))
            self.add(self.at(day, self.rng.uniform(8, 8.5)), juice, self.amount(juice))
        if self.rng.random() < 0.8:
            self.add(self.at(day, self.rng.uniform(12, 13)), classes, self.amount(classes))

    def _trip_day(self, day: date, abroad: bool) -> None:
        rng = self.rng
        stay = m.TRAVEL[2 + int(rng.integers(2))]
        start = next(s for s, n, _ in self.p.trips if s <= day < s + timedelta(days=n))
        if day == start:
            self.add(self.at(day, 15), stay, self.amount(stay, 1.0))
        if abroad:
            country, currency, shop = m.TRAVEL_ABROAD[int(rng.integers(len(m.TRAVEL_ABROAD)))]
            self.add(
                self.at(day, rng.uniform(10, 20)),
                shop,
                self.amount(shop),
                country=country,
                currency=currency,
            )
        else:
            place = self.p.dining[int(rng.integers(len(self.p.dining)))]
            self.add(self.at(day, rng.uniform(12, 21)), place, self.amount(place, 1.5))

    @property
    def price_rise_from(self) -> date:
        return self._price_rise_from

    def run(self, start: date, end: date) -> None:
        self._price_rise_from = _months_before(end, 2)
        self.habit_from = end - timedelta(days=HABIT_DAYS)
        self.end = end
        day = start
        while day < end:
            self.day(day)
            day += timedelta(days=1)
        self.inject_anomalies(start, end)
        outside = [tx["timestamp"] for when, tx, _ in self.rows if not start <= when.date() < end]
        if outside:  # a bug in this module, never data to hand on
            raise AssertionError(f"{self.p.user_id}: rows outside [{start}, {end}): {outside[:3]}")

    def inject_anomalies(self, start: date, end: date) -> None:
        rng, p = self.rng, self.p
        normal = [row for row in self.rows if row[1]["direction"] == "debit"]
        count = max(len(ANOMALY_KINDS), round(len(normal) * ANOMALY_RATE))
        span = (end - start).days
        for i in range(count):
            kind = ANOMALY_KINDS[i % len(ANOMALY_KINDS)]
            # Leave the first fortnight alone: a detector needs some history to call anything odd.
            day = start + timedelta(days=int(rng.integers(min(14, span - 1), span)))
            if kind == "amount_spike":
                usual = p.groceries + p.dining + p.shopping
                shop = usual[int(rng.integers(len(usual)))]
                self.add(
                    self.at(day, rng.uniform(10, 20)),
                    shop,
                    self.amount(shop, p.scale * float(rng.uniform(8, 25))),
                    anomaly=kind,
                )
            elif kind == "new_merchant_odd_hour":
                shop = m.SUSPICIOUS[int(rng.integers(len(m.SUSPICIOUS)))]
                self.add(self.at(day, rng.uniform(1.5, 4.5)), shop, self.amount(shop), anomaly=kind)
            elif kind == "card_testing":
                tester = m.CARD_TESTERS[int(rng.integers(len(m.CARD_TESTERS)))]
                first = self.at(day, rng.uniform(0, 23))
                for burst in range(int(rng.integers(5, 10))):
                    when = first + timedelta(seconds=int(burst * rng.uniform(20, 90)))
                    self.add(when, tester, self.amount(tester), anomaly=kind)
            elif kind == "foreign_country":
                country, currency, shop = m.FOREIGN[int(rng.integers(len(m.FOREIGN)))]
                self.add(
                    self.at(day, rng.uniform(0, 23)),
                    shop,
                    self.amount(shop),
                    country=country,
                    currency=currency,
                    anomaly=kind,
                )
            elif kind == "duplicate_charge" and normal:
                when, original, _ = normal[int(rng.integers(len(normal)))]
                gap = timedelta(minutes=float(rng.uniform(1, 6)))
                # Charged again a few minutes later, or earlier where later would pass the end.
                again = when + gap if (when + gap).date() < end else when - gap
                copy = dict(original)
                copy["timestamp"] = again.isoformat()
                self.rows.append((again, copy, kind))

    def records(self, seed: int, index: int) -> Iterator[DemoRecord]:
        self.rows.sort(key=lambda row: row[0])
        for seq, (_, tx, anomaly) in enumerate(self.rows):
            tx["transaction_id"] = f"demo{seed}-{index + 1:04d}-{seq:06d}"
            yield DemoRecord(self.p.user_id, tx, anomaly)


def generate(
    users: int = 3, months: int = 6, seed: int = 7, end: date | None = None
) -> list[DemoRecord]:
    """``users`` histories of ``months`` months up to ``end`` (exclusive); same seed, same data."""
    if users < 1 or months < 1:
        raise ValueError("users and months must be at least 1")
    end = end or default_end()
    start = _months_before(end, months)
    records: list[DemoRecord] = []
    for index in range(users):
        rng = np.random.default_rng([seed, index])
        stream = _UserStream(rng, make_persona(rng, index, start, end))
        stream.run(start, end)
        records.extend(stream.records(seed, index))
    return records
