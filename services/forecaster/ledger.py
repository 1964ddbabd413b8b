"""What each transaction contributes to daily spend, and how revisions, edits and removals move
it: pure, so the order rules can be tested without a database.

A transaction's contribution is its amount in the user's base currency (or, with no exchange
rate, in its own currency under a series of its own, "Travel (JPY)"), under its category, on its
local day. Applying a batch in offset order yields the deltas to add to ``daily_spend`` and the new
record of every transaction touched. Every rule is idempotent: a re-delivered event or change
finds its effect already recorded and changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from schemas import Direction, TransactionChange, TransactionEvent

UNCATEGORIZED = "Uncategorized"
ZERO = Decimal(0)
SeriesDay = tuple[str, str, str, date]  # user, account, series, day
Key = tuple[str, str]  # user, transaction_id


@dataclass(frozen=True)
class Counted:
    """A transaction as daily spend holds it."""

    account_id: str
    category: str
    series: str  # the category, or "category (CUR)" when no rate converted it
    day: date
    spent: Decimal
    received: Decimal
    revision: int
    state: str  # counted | excluded | removed
    user_category: bool = False  # a person chose the category: a bank revision keeps it
    currency: str | None = None  # set when the amount stayed in its own currency

    @property
    def counts(self) -> bool:
        return self.state == "counted"

    def columns(self) -> tuple[object, ...]:
        """The fields in declaration order (dataclasses.astuple deep-copies: ten times slower)."""
        return (
            self.account_id,
            self.category,
            self.series,
            self.day,
            self.spent,
            self.received,
            self.revision,
            self.state,
            self.user_category,
            self.currency,
        )


def series_of(category: str, currency: str | None) -> str:
    return category if currency is None else f"{category} ({currency})"


def contribution(event: TransactionEvent, rate: Decimal | None, category: str) -> Counted:
    """The event's record, in the base currency at ``rate`` (None: no rate is known)."""
    factor = rate if rate is not None else Decimal(1)
    amount = event.amount * factor
    own = None if rate is not None else event.currency
    return Counted(
        account_id=event.account_id,
        category=category,
        series=series_of(category, own),
        day=event.timestamp.date(),
        spent=amount if event.direction is Direction.debit else ZERO,
        received=amount if event.direction is Direction.credit else ZERO,
        revision=event.revision,
        state="counted",
        currency=own,
    )


class Ledger:
    """Applies events and changes in order over the records of the transactions they touch."""

    def __init__(self, records: dict[Key, Counted]):
        self.records = dict(records)
        self.deltas: defaultdict[SeriesDay, list[Decimal | int]] = defaultdict(
            lambda: [ZERO, ZERO, 0]
        )
        self.touched: set[Key] = set()

    def _add(self, user_id: str, record: Counted, sign: int) -> None:
        delta = self.deltas[(user_id, record.account_id, record.series, record.day)]
        delta[0] += sign * record.spent
        delta[1] += sign * record.received
        delta[2] += sign

    def _set(self, key: Key, old: Counted | None, new: Counted) -> None:
        if old is not None and old.counts:
            self._add(key[0], old, -1)
        if new.counts:
            self._add(key[0], new, +1)
        self.records[key] = new
        self.touched.add(key)

    def event(self, event: TransactionEvent, rate: Decimal | None) -> None:
        key = (event.user_id, event.transaction_id)
        old = self.records.get(key)
        if old is not None and (old.state == "removed" or event.revision <= old.revision):
            return  # removed for good, or nothing newer than what is counted
        category = event.category or UNCATEGORIZED
        if old is not None and old.user_category:
            category = old.category  # a person's category outlives the bank's revisions
        new = contribution(event, rate, category)
        if old is not None:
            new = replace(new, state=old.state, user_category=old.user_category)
        self._set(key, old, new)

    def change(self, change: TransactionChange) -> None:
        key = (change.user_id, change.transaction_id)
        old = self.records.get(key)
        if change.kind == "remove":
            if old is None:  # removed before it was counted: the tombstone keeps it out
                old = Counted(change.account_id, UNCATEGORIZED, UNCATEGORIZED, date.min,
                              ZERO, ZERO, 0, "counted")  # fmt: skip
                self.records[key] = replace(old, state="removed")
                self.touched.add(key)
                return
            self._set(key, old, replace(old, state="removed"))
            return
        if old is None or old.state == "removed":
            return  # an edit of what is not counted (yet, or any more) has nothing to move
        edit = change.edit()
        new = old
        if edit.category is not None:
            new = replace(
                new,
                category=edit.category,
                series=series_of(edit.category, old.currency),
                user_category=True,
            )
        if edit.excluded is not None:
            new = replace(new, state="excluded" if edit.excluded else "counted")
        if new != old:
            self._set(key, old, new)
