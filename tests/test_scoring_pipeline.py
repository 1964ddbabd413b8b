"""The scorer's batch pipeline with fakes for every port: rewinds, dirty batches, re-deliveries,
poison and revisions, each checked against what was stored, published and committed, in order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from schemas import AnomalyAlert, CategoryRename, DeadLetter, TransactionChange, TransactionEvent
from services.core.consuming import Item, Retrying
from services.core.offsets import Offsets
from services.scorer.categorize_types import Categorization
from services.scorer.pipeline import ScoringPipeline
from services.scorer.scoring import ScoredTransaction
from services.scorer.store import StoredState

TOPIC = "transactions.v1"
Key = tuple[str, str]
NOW = datetime(2026, 3, 5, 12, tzinfo=UTC)


def event(tx: str, amount: str = "12.50", *, account: str = "card", revision: int = 1) -> Any:
    return TransactionEvent.model_validate(
        {
            "transaction_id": tx,
            "account_id": account,
            "timestamp": (NOW - timedelta(minutes=5)).isoformat(),
            "amount": amount,
            "merchant": "Corner Shop",
            "revision": revision,
            "user_id": "u",
            "ingested_at": NOW.isoformat(),
        }
    )


def delivered(
    *items: tuple[int, int, TransactionEvent],
) -> tuple[list[SimpleNamespace], list[Item]]:
    """Kafka records at (partition, offset) and the events decoded from them."""
    records = [
        SimpleNamespace(topic=TOPIC, partition=p, offset=o, key=e.account_id.encode(), value=b"{}")
        for p, o, e in items
    ]
    return records, [e for _, _, e in items]


def tp(partition: int) -> TopicPartition:
    return TopicPartition(TOPIC, partition)


class Journal:
    """Every port writes here, so a test can check what happened and in which order."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []

    def __call__(self, what: str, detail: Any) -> None:
        self.entries.append((what, detail))

    def of(self, what: str) -> list[Any]:
        return [detail for kind, detail in self.entries if kind == what]

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.entries]


class FakeCategorizer:
    async def apply(
        self, events: list[TransactionEvent]
    ) -> tuple[list[TransactionEvent], dict[Key, Categorization]]:
        return events, {}


class FakeScoring:
    """Scores by amount: above 1,000 is an anomaly. An event named "poison" breaks scoring."""

    def __init__(self, journal: Journal):
        self.journal = journal
        self.outage = False

    async def prepare(self, events: Sequence[TransactionEvent]) -> None:
        if self.outage:
            raise ConnectionRefusedError("PostgreSQL is down")

    async def score(self, events: list[TransactionEvent]) -> list[ScoredTransaction]:
        if any(e.transaction_id == "poison" for e in events):
            raise ValueError("a feature came out NaN")
        self.journal("scored", [e.transaction_id for e in events])
        return [scored(float(e.amount) > 1000) for e in events]

    def forget(self, accounts: Iterable[tuple[str, str]]) -> None:
        self.journal("forgot", sorted(accounts))


def scored(anomaly: bool) -> ScoredTransaction:
    return ScoredTransaction(
        score=0.99 if anomaly else 0.1,
        is_anomaly=anomaly,
        severity="high" if anomaly else None,
        model_version="fake-1",
        detector_scores={"fake": 0.99 if anomaly else 0.1},
        explanation=[{"text": "336× your usual", "feature": "amount_ratio", "value": 336.0}]
        if anomaly
        else [],
        features=[],
    )


class FakeStore:
    """Rows by key with their revision. A transaction named "reject" is refused by the database;
    ``outage`` makes every write fail as if PostgreSQL were down."""

    def __init__(self, journal: Journal):
        self.journal = journal
        self.rows: dict[Key, tuple[int, ScoredTransaction]] = {}
        self.removed: set[Key] = set()
        self.outage = False

    async def already_stored(self, events: Sequence[TransactionEvent]) -> StoredState:
        scores = {}
        for e in events:
            row = self.rows.get((e.user_id, e.transaction_id))
            if row is not None and row[0] >= e.revision:
                scores[(e.user_id, e.transaction_id)] = row[1]
        return StoredState(scores, {(e.user_id, e.transaction_id) for e in events} & self.removed)

    async def persist(
        self,
        events: Sequence[TransactionEvent],
        scores: Sequence[ScoredTransaction],
        categorized: dict[Key, Categorization],
    ) -> None:
        if self.outage:
            raise ConnectionRefusedError("PostgreSQL is down")
        if any(e.transaction_id == "reject" for e in events):
            raise ValueError("value out of range for the column")
        for e, s in zip(events, scores, strict=True):
            self.rows[(e.user_id, e.transaction_id)] = (e.revision, s)
        self.journal("persisted", [e.transaction_id for e in events])

    async def apply_changes(self, changes: Sequence[TransactionChange | CategoryRename]) -> None:
        self.journal("changed", len(changes))


class FakeOutbox:
    def __init__(self, journal: Journal):
        self.journal = journal

    async def send(self, alerts: Sequence[AnomalyAlert], letters: Sequence[DeadLetter]) -> None:
        if alerts:
            self.journal("alerted", [a.transaction_id for a in alerts])
        if letters:
            self.journal("dead-lettered", [(letter.partition, letter.offset) for letter in letters])


class FakeOffsets:
    def __init__(self, journal: Journal):
        self.journal = journal

    def rewind(self, *positions: Offsets) -> None:
        target: Offsets = {}
        for offsets in positions:
            for partition, offset in offsets.items():
                target[partition] = min(offset, target.get(partition, offset))
        self.journal("rewound", target)

    async def commit(self, offsets: Offsets) -> None:
        self.journal("committed", offsets)


class Harness:
    def __init__(self) -> None:
        self.journal = Journal()
        self.scoring = FakeScoring(self.journal)
        self.store = FakeStore(self.journal)
        self.offsets = FakeOffsets(self.journal)
        self.pipeline = ScoringPipeline(
            categorizer=FakeCategorizer(),
            scoring=self.scoring,
            store=self.store,
            outbox=FakeOutbox(self.journal),
            retry=Retrying(max_delay_s=0.01, give_up_after_s=0.0),
            group="spendstream-scorer",
        )

    async def handle(self, *items: tuple[int, int, TransactionEvent]) -> None:
        records, batch = delivered(*items)
        await self.pipeline.handle(records, batch, self.offsets)

    async def settle(self) -> Any:
        return await self.pipeline.inflight.wait()


async def test_a_clean_batch_is_stored_alerted_then_committed_at_exact_offsets() -> None:
    h = Harness()
    await h.handle((0, 10, event("t1")), (1, 4, event("t2", "4200.00")), (0, 11, event("t3")))
    assert await h.settle() is None
    assert h.journal.kinds() == ["scored", "persisted", "alerted", "committed"]
    assert h.journal.of("alerted") == [["t2"]]
    assert h.journal.of("committed") == [{tp(0): 12, tp(1): 5}]
    assert set(h.store.rows) == {("u", "t1"), ("u", "t2"), ("u", "t3")}


async def test_poison_in_scoring_is_dead_lettered_and_the_rest_stored() -> None:
    h = Harness()
    await h.handle((0, 1, event("t1")), (0, 2, event("poison")), (0, 3, event("t3")))
    assert await h.settle() is None
    assert h.journal.of("dead-lettered") == [[(0, 2)]]
    assert set(h.store.rows) == {("u", "t1"), ("u", "t3")}
    assert h.journal.of("committed") == [{tp(0): 4}]  # past the poison: it is in the DLQ


async def test_a_dirty_batch_makes_the_next_one_read_again_over_rebuilt_histories() -> None:
    """A row the database refused was learnt by the histories while scoring: the next batch
    forgets those accounts and is read again, and nothing of it is committed twice."""
    h = Harness()
    await h.handle((0, 1, event("t1")), (0, 2, event("reject", account="savings")))
    await h.handle((0, 3, event("t4")))
    assert h.journal.of("dead-lettered") == [[(0, 2)]]
    assert h.journal.of("committed") == [{tp(0): 3}]  # the dirty batch itself did commit
    assert h.journal.of("forgot")[-1] == [("u", "card"), ("u", "savings")]
    assert h.journal.of("rewound") == [{tp(0): 3}]  # this batch only: the dirty one committed
    assert ("u", "t4") not in h.store.rows
    await h.handle((0, 3, event("t4")))  # read again
    assert await h.settle() is None
    assert ("u", "t4") in h.store.rows
    assert h.journal.of("committed")[-1] == {tp(0): 4}


async def test_a_failed_store_rewinds_both_batches_and_commits_nothing() -> None:
    h = Harness()
    h.store.outage = True
    await h.handle((0, 5, event("t1")), (2, 7, event("t2")))
    await h.handle((0, 6, event("t3")), (1, 9, event("t4")))
    assert h.journal.of("committed") == []
    assert h.journal.of("rewound") == [{tp(0): 5, tp(1): 9, tp(2): 7}]
    assert h.journal.of("forgot")[-1] == [("u", "card")]
    h.store.outage = False
    await h.handle((0, 5, event("t1")), (2, 7, event("t2")))  # read again, stored this time
    assert await h.settle() is None
    assert h.journal.of("committed") == [{tp(0): 6, tp(2): 8}]


async def test_a_transient_failure_while_scoring_rewinds_the_batch_and_raises() -> None:
    h = Harness()
    h.scoring.outage = True
    with pytest.raises(ConnectionRefusedError):
        await h.handle((3, 40, event("t1")), (3, 41, event("t2")))
    assert h.journal.of("rewound") == [{tp(3): 40}]
    assert h.journal.of("dead-lettered") == []  # an outage is waited out, never dead-lettered
    assert h.store.rows == {}


async def test_a_redelivered_anomaly_is_not_scored_again_but_alerted_again() -> None:
    """Its alert may not have gone out the first time: alerts are at least once."""
    h = Harness()
    h.store.rows[("u", "t9")] = (1, scored(True))
    await h.handle((0, 20, event("t9", "4200.00")), (0, 21, event("t10")))
    assert await h.settle() is None
    assert h.journal.of("scored") == [["t10"]]
    assert h.journal.of("persisted") == [["t10"]]
    assert h.journal.of("alerted") == [["t9"]]
    assert h.journal.of("committed") == [{tp(0): 22}]


async def test_a_removed_transaction_is_never_stored_again() -> None:
    h = Harness()
    h.store.removed.add(("u", "gone"))
    await h.handle((0, 30, event("gone")), (0, 31, event("t1")))
    assert await h.settle() is None
    assert h.journal.of("persisted") == [["t1"]]
    assert ("u", "gone") not in h.store.rows


async def test_a_revision_is_scored_while_its_original_is_still_being_stored() -> None:
    h = Harness()
    await h.handle((0, 1, event("t1", "10.00")))
    await h.handle((0, 2, event("t1", "4200.00", revision=2)), (0, 3, event("t1", "10.00")))
    assert await h.settle() is None
    assert h.journal.of("scored") == [["t1"], ["t1"]]
    assert h.store.rows[("u", "t1")][0] == 2
    assert h.journal.of("alerted") == [["t1"]]
    assert h.journal.of("committed") == [{tp(0): 2}, {tp(0): 4}]
