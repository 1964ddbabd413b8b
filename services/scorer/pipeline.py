"""The scorer's batch as a plain class: categorize → features → score → persist → publish → commit.

FastStream only hands a batch to :meth:`ScoringPipeline.handle`. Everything else goes through
ports given to the pipeline, so tests drive rewinds, dirty batches, re-deliveries and poison with
fakes, and the service wires PostgreSQL, the scoring thread, the broker and the Kafka consumer.

Two batches overlap: batch N is stored by a job of its own while batch N+1 is scored (see
``inflight.py``). Delivery stays at-least-once and results exactly-once, because the offsets
port is the only thing that ever moves offsets: a store job commits its batch's exact offsets
after the database commit, and anything that did not go cleanly rewinds to where it began.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import Counter, Histogram

from schemas import AnomalyAlert, CategoryRename, DeadLetter, TransactionChange, TransactionEvent
from services.core.consuming import (
    TRANSIENT_DB_ERRORS,
    ChangeDelivery,
    Delivery,
    Item,
    Retry,
    process_isolating_poison,
    split_batch,
)
from services.core.offsets import OffsetControl, Offsets, first_offsets, next_offsets
from services.scorer.backlog import Backlog
from services.scorer.categorize_types import Categorization
from services.scorer.inflight import InFlight, Job
from services.scorer.scoring import ScoredTransaction
from services.scorer.store import StoredState

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (user_id, transaction_id)
Account = tuple[str, str]  # (user_id, account_id)

SCORED = Counter("spendstream_scorer_transactions_scored_total", "Transactions scored and stored.")
ANOMALIES = Counter(
    "spendstream_scorer_anomalies_total",
    "Live anomalies found (each alerted), by severity.",
    ["severity"],
)
HISTORICAL_ANOMALIES = Counter(
    "spendstream_scorer_historical_anomalies_total",
    "Anomalies among transactions ingested days after they happened: stored, never alerted.",
)
DEAD_LETTERS = Counter(
    "spendstream_dlq_messages_total", "Messages sent to the dead-letter topic.", ["consumer_group"]
)
BATCH_SIZE = Histogram(
    "spendstream_scorer_batch_size",
    "Records per consumed batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000),
)
BATCH_LATENCY = Histogram(
    "spendstream_scorer_batch_duration_seconds",
    "Time to score and persist one batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SCORES = Histogram(
    "spendstream_scorer_score",
    "Distribution of ensemble anomaly scores.",
    buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999, 1.0),
)
END_TO_END = Histogram(
    "spendstream_scorer_end_to_end_seconds",
    "From ingest accepting a transaction to its score being committed.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class Categorizing(Protocol):
    async def apply(
        self, events: list[TransactionEvent]
    ) -> tuple[list[TransactionEvent], dict[Key, Categorization]]:
        """The events with categories filled in where one can be told, and how each was."""
        ...


class Scoring(Protocol):
    """Per-account feature state and the served models."""

    async def prepare(self, events: Sequence[TransactionEvent]) -> None:
        """Rebuild the histories of the events' accounts that are not held in memory."""
        ...

    async def score(self, events: list[TransactionEvent]) -> list[ScoredTransaction]: ...

    def forget(self, accounts: Iterable[Account]) -> None:
        """Drop these accounts' histories: they may hold transactions that were not stored."""
        ...


class ScoreStore(Protocol):
    async def already_stored(self, events: Sequence[TransactionEvent]) -> StoredState: ...

    async def persist(
        self,
        events: Sequence[TransactionEvent],
        scores: Sequence[ScoredTransaction],
        categorized: dict[Key, Categorization],
    ) -> None: ...

    async def apply_changes(
        self, changes: Sequence[TransactionChange | CategoryRename]
    ) -> None: ...


class Outbox(Protocol):
    async def send(self, alerts: Sequence[AnomalyAlert], letters: Sequence[DeadLetter]) -> None:
        """Publish alerts (keyed by account) and dead letters, and return once acknowledged."""
        ...


@dataclass(frozen=True)
class Scored:
    """A transaction scored in this batch, waiting to be stored."""

    record: Any
    event: TransactionEvent  # with the category auto-categorization filled in, if it did
    result: ScoredTransaction
    categorization: Categorization | None


@dataclass(frozen=True)
class Stored:
    """What a store job writes: the batch's scored transactions, the alerts of re-delivered ones,
    its changes (applied after the transactions, which they follow on the topic), its poison."""

    results: dict[Key, Scored]
    redelivered: list[tuple[TransactionEvent, ScoredTransaction]]
    changes: list[ChangeDelivery]
    dead: list[DeadLetter]


def key_of(event: TransactionEvent) -> Key:
    return event.user_id, event.transaction_id


def accounts_of(events: Iterable[TransactionEvent]) -> set[Account]:
    return {(event.user_id, event.account_id) for event in events}


def alert_for(event: TransactionEvent, scored: ScoredTransaction) -> AnomalyAlert:
    return AnomalyAlert(
        alert_id=f"{event.user_id}:{event.transaction_id}",
        user_id=event.user_id,
        transaction_id=event.transaction_id,
        account_id=event.account_id,
        timestamp=event.timestamp,
        amount=event.amount,
        currency=event.currency,
        merchant=event.merchant,
        category=event.category,
        score=scored.score,
        severity=scored.severity or "low",
        detector_scores=scored.detector_scores,
        explanation=scored.explanation,
        model_version=scored.model_version,
        scored_at=datetime.now(UTC),
    )


class ScoringPipeline:
    """Scores a batch while the previous one is stored, then hands it to a store job of its own."""

    def __init__(
        self,
        *,
        categorizer: Categorizing,
        scoring: Scoring,
        store: ScoreStore,
        outbox: Outbox,
        retry: Retry,
        group: str,
        inflight: InFlight | None = None,
        backlog: Backlog | None = None,
    ):
        self.categorizer = categorizer
        self.scoring = scoring
        self.store = store
        self.outbox = outbox
        self.retry = retry
        self.group = group
        self.inflight = inflight if inflight is not None else InFlight()
        self.backlog = backlog

    async def handle(
        self, records: Sequence[Any], batch: Sequence[Item], offsets: OffsetControl
    ) -> None:
        """Score ``batch`` (decoded from ``records``) and start storing it; on any failure,
        rewind so that it is read again."""
        started = time.perf_counter()
        BATCH_SIZE.observe(len(batch))
        if self.backlog is not None:
            self.backlog.saw_batch(len(records))
        first = first_offsets(records)
        results: dict[Key, Scored] = {}
        try:
            split = split_batch(records, batch)
            unseen, stored = await self._not_yet_stored(split.deliveries)
            fresh = [d for d in unseen if not stored.known(d.event)]
            dead = list(split.dead)
            if fresh:
                record_of = {key_of(d.event): d.record for d in fresh}

                async def score(events: list[TransactionEvent]) -> None:
                    results.update(await self._score(events, record_of))

                dead += await process_isolating_poison(fresh, score, group=self.group)
        except BaseException:
            self.scoring.forget(accounts_of(r.event for r in results.values()))
            offsets.rewind(first)
            raise
        previous = await self.inflight.wait()
        if previous is not None:
            # The batch before did not go cleanly: read it (if it is not committed) and this one
            # again, scored against histories rebuilt from what the database holds.
            self.scoring.forget(previous.accounts | accounts_of(r.event for r in results.values()))
            offsets.rewind(first, *([] if previous.committed else [previous.first]))
            return
        redelivered = [
            (d.event, stored.scores[key_of(d.event)])
            for d in unseen
            if key_of(d.event) in stored.scores
        ]
        batch_to_store = Stored(results, redelivered, split.changes, dead)
        commit_to = next_offsets(records)
        self.inflight.start(
            lambda job: self._store(job, offsets, commit_to, batch_to_store, started),
            first=first,
            keys={key: s.event.revision for key, s in results.items()},
            accounts=accounts_of(r.event for r in results.values()),
        )

    async def _not_yet_stored(
        self, deliveries: list[Delivery]
    ) -> tuple[list[Delivery], StoredState]:
        """The deliveries not in the batch being stored (at their revision), and what the
        database holds of them: stored scores to re-alert from, and removals to skip."""
        storing = self.inflight.keys
        unseen = [d for d in deliveries if storing.get(key_of(d.event), 0) < d.event.revision]
        stored = await self.retry(
            lambda: self.store.already_stored([d.event for d in unseen]),
            "looking up stored transactions",
        )
        return unseen, stored

    async def _score(
        self, events: list[TransactionEvent], record_of: dict[Key, Any]
    ) -> dict[Key, Scored]:
        try:
            events, categorized = await self._categorize(events)
            await self.retry(lambda: self.scoring.prepare(events), "rebuilding account histories")
            scores = await self.scoring.score(events)
        except BaseException:
            self.scoring.forget(accounts_of(events))  # they may hold part of the events
            raise
        return {
            key_of(event): Scored(
                record_of[key_of(event)], event, result, categorized.get(key_of(event))
            )
            for event, result in zip(events, scores, strict=True)
        }

    async def _categorize(
        self, events: list[TransactionEvent]
    ) -> tuple[list[TransactionEvent], dict[Key, Categorization]]:
        """Fill in missing categories; if that fails for a reason other than the database,
        score the transactions uncategorized rather than hold them back."""
        try:
            return await self.retry(
                lambda: self.categorizer.apply(events), "categorizing transactions"
            )
        except TRANSIENT_DB_ERRORS:
            raise
        except Exception:
            log.exception("auto-categorization failed; scoring %d without it", len(events))
            return events, {}

    async def _store(
        self,
        job: Job,
        offsets: OffsetControl,
        commit_to: Offsets,
        batch: Stored,
        started: float,
    ) -> None:
        """Store the scored batch (isolating rows the database rejects), apply its changes,
        publish its alerts and dead letters, then commit its offsets."""
        results = batch.results

        async def persist(events: list[TransactionEvent]) -> None:
            scored = [results[key_of(e)] for e in events]
            categorized = {key_of(s.event): s.categorization for s in scored if s.categorization}
            await self.retry(
                lambda: self.store.persist(events, [s.result for s in scored], categorized),
                "persisting scored transactions",
            )

        async def apply(changes: list[TransactionChange | CategoryRename]) -> None:
            await self.retry(lambda: self.store.apply_changes(changes), "applying changes")

        stored = [Delivery(s.record, s.event) for s in results.values()]
        rejected = await process_isolating_poison(stored, persist, group=self.group)
        job.dirty = bool(rejected)
        dead = batch.dead
        if batch.changes:
            dead = [*dead, *await process_isolating_poison(batch.changes, apply, group=self.group)]
        alerts = self._alerts(batch, rejected)
        await self.outbox.send(alerts, [*dead, *rejected])
        DEAD_LETTERS.labels(self.group).inc(len(dead) + len(rejected))
        SCORED.inc(len(results) - len(rejected))
        await offsets.commit(commit_to)
        job.committed = True
        BATCH_LATENCY.observe(time.perf_counter() - started)

    def _alerts(self, batch: Stored, rejected: list[DeadLetter]) -> list[AnomalyAlert]:
        """Alerts of the stored live anomalies, and of re-delivered ones: their alert may not
        have gone out the first time."""
        rejected_at = {(letter.topic, letter.partition, letter.offset) for letter in rejected}
        now = time.time()
        alerts = []
        for s in batch.results.values():
            if (s.record.topic, s.record.partition, s.record.offset) in rejected_at:
                continue
            END_TO_END.observe(max(0.0, now - s.event.ingested_at.timestamp()))
            SCORES.observe(s.result.score)
            if s.result.alerts:
                ANOMALIES.labels(s.result.severity).inc()
                alerts.append(alert_for(s.event, s.result))
            elif s.result.is_anomaly:
                HISTORICAL_ANOMALIES.inc()
        alerts += [alert_for(event, result) for event, result in batch.redelivered if result.alerts]
        return alerts
