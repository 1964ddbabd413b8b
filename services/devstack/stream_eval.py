"""``spendstream eval anomalies --stream``: a labelled transaction stream through the real
pipeline, as a new installation meets it.

The stream is posted to ingest one day of event time at a time, in event-time order, to a fresh
local stack (embedded broker and PostgreSQL, ingest, scorer, API) with the scorer's default
training settings. After each day the scores just stored are read back: those are the *live*
scores, what a person saw when the transaction arrived. Models retrain and re-score recent rows
as the service does, so the scores stored at the end are read too, and reported apart: they come
from a model that has seen the rows it scores. With a feedback delay, each fraud is confirmed
through ``POST /v1/anomalies/{id}/feedback`` that many days of event time after it happened, as a
bank's chargeback feed would, and the next day waits until the scorer has taken it in.

Two baselines are computed causally on the same stream and printed beside the model: the amount
itself, and a per-account robust z of the amount against the account's earlier amounts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import tempfile
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from schemas import TransactionEvent
from services.core.db import create_pool
from services.core.settings import Settings
from services.demo.generator import DemoRecord
from services.demo.loader import post_records
from services.devstack.pipeline_eval import eval_keys
from services.devstack.stack import Stack, isolated_settings, service_url
from services.ingest.amounts import file_decimal_mark, parse_amount
from services.ingest.detect import SAMPLE_ROWS, SYNONYMS, direction_of, negative_is_money_out
from services.scorer import store
from services.scorer.evaluation import detection_metrics
from services.scorer.registry import CONFIRMED_FRAUD_REMEMBERED_METRIC, training_due
from services.scorer.replay import account_z_baseline, amount_baseline
from services.scorer.tabular import labels_of

log = logging.getLogger(__name__)

EVAL_USER = "eval"
CHANNELS = {"card", "online", "transfer", "atm", "other"}
LAST_DAYS = 30
FEEDBACK_ATTEMPTS = 30
TRAINING_WAIT_S = 600


@dataclass(frozen=True)
class StreamColumns:
    """Column names in the labelled CSV; ``merchant``, ``channel`` and ``user`` may be absent.
    A name left at its default that the file does not have is looked for among the names
    third-party streams give that column (``resolve_columns``)."""

    transaction_id: str = "transaction_id"
    account: str = "account_id"
    timestamp: str = "timestamp"
    amount: str = "amount"
    merchant: str | None = "merchant"
    channel: str | None = "channel"
    label: str = "is_anomaly"
    user: str | None = None
    kind: str | None = None  # debit or credit; without it, one named as imports know it, if any


def _folded(name: object) -> str:
    """A column's name as letters and digits only: "TX_AMOUNT" and "tx amount" are "txamount"."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


# What card streams and bank exports nobody here wrote call each column, compared as letters and
# digits only ("TX_AMOUNT" is "txamount"): the Fraud Detection Handbook's simulator (TX_DATETIME,
# CUSTOMER_ID, TERMINAL_ID, TX_FRAUD), Sparkov-style generators (trans_date_trans_time, cc_num,
# amt, trans_num, is_fraud), finforge (user_id, is_fraud), and the names imports know. Earlier
# names win. Not looked for: a Sparkov file's unix_time (years away from its
# trans_date_trans_time), the Handbook's TX_TIME_SECONDS (from the simulation's start), and a
# bare "time", which may be a time of day beside a date.
STREAM_COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "transaction_id": (
        "transactionid",
        "transnum",
        "txnid",
        "txid",
        "tranid",
        "transactionreference",
        "id",
    ),
    "account": (
        "accountid",
        "customerid",
        "cardid",
        "ccnum",
        "cardnumber",
        "accountnumber",
        "account",
        "card",
        "customer",
        "userid",
    ),
    "timestamp": (
        "timestamp",
        "txdatetime",
        "transdatetranstime",
        "datetime",
        "transactiondatetime",
        "transactiontime",
        *map(_folded, SYNONYMS["date"]),
    ),
    "amount": (
        "amount",
        "txamount",
        "amt",
        "transactionamount",
        *map(_folded, SYNONYMS["amount"]),
    ),
    "merchant": ("merchant", "merchantname", "merchantid", "terminalid", "terminal", "payee"),
    "channel": ("channel", "paymentchannel", "txchannel"),
    "label": ("isanomaly", "isfraud", "txfraud", "fraud", "isfraudulent", "fraudlabel", "label"),
}
_OPTIONAL = frozenset({"merchant", "channel"})
ROW_NUMBER = "_row"  # the transaction id of a file without one


def resolve_columns(frame: pd.DataFrame, columns: StreamColumns) -> StreamColumns:
    """``columns`` as the file has them: each name the file has stays; one left at its default
    that the file lacks becomes the first column named as ``STREAM_COLUMN_NAMES`` lists for it
    (``merchant`` and ``channel`` may then be absent). A transaction id the file cannot give is
    its row number. ``ValueError`` names any other missing column and the file's columns."""
    defaults = StreamColumns()
    found: dict[str, Any] = {}
    missing: list[str] = []
    by_folded = _columns_by_folded(frame)
    named = [getattr(columns, role) for role in (*STREAM_COLUMN_NAMES, "user", "kind")]
    taken: set[str | None] = set(named) & set(frame.columns)
    for role, names in STREAM_COLUMN_NAMES.items():
        given = getattr(columns, role)
        if given in frame.columns:
            continue
        if given is not None and given != getattr(defaults, role):
            missing.append(given)
            continue
        column = next((by_folded[n] for n in names if by_folded.get(n) not in (None, *taken)), None)
        taken.add(column)
        if column is not None or role in _OPTIONAL:
            found[role] = column
        elif role == "transaction_id":
            found[role] = ROW_NUMBER
        else:
            missing.append(f"{given} (or one named {', '.join(names[:4])}...)")
    if columns.kind is None:
        found["kind"] = _kind_column(by_folded)
    elif columns.kind not in frame.columns:
        missing.append(columns.kind)
    if missing:
        raise ValueError(
            f"no column(s) {'; '.join(missing)}; the file has {', '.join(map(str, frame.columns))}"
        )
    return replace(columns, **found)


@dataclass
class LabelledStream:
    records: list[DemoRecord]  # the bodies ingest accepts, under their user
    labels: np.ndarray
    times: list[datetime]
    moved_back: timedelta = timedelta(0)  # from the file's times, so that none is ahead of now
    columns: StreamColumns = field(default_factory=StreamColumns)  # as read from the file


def read_stream(
    frame: pd.DataFrame, columns: StreamColumns, now: datetime | None = None
) -> LabelledStream:
    """The CSV's rows as transactions in event-time order; ``ValueError`` naming a missing
    column or a value that cannot be read. A stream that ends after ``now`` (a generator's
    year to come) is moved back by whole weeks to end by then: ingest takes times up to a day
    ahead, and weekdays and hours stay as they were."""
    columns = resolve_columns(frame, columns)
    if columns.transaction_id == ROW_NUMBER:
        frame = frame.assign(**{ROW_NUMBER: [f"row-{i + 2}" for i in range(len(frame))]})
    times = _times(frame[columns.timestamp])
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise ValueError(f"column {columns.timestamp}: row {row + 2} is not a date and time")
    moved_back = _weeks_back(times.max().to_pydatetime(), now or datetime.now(UTC))
    times = times - moved_back
    amounts = _amounts(frame[columns.amount])
    if amounts.isna().any():
        row = int(np.flatnonzero(amounts.isna().to_numpy())[0])
        raise ValueError(f"column {columns.amount}: row {row + 2} is not an amount")
    kinds = frame[columns.kind] if columns.kind is not None else None
    frame = frame.assign(_t=times, _a=_money_out(amounts, kinds)).sort_values("_t", kind="stable")
    records = [_record(row, columns) for row in frame.to_dict("records")]
    return LabelledStream(
        records=records,
        labels=labels_of(frame[columns.label]),
        times=[t.to_pydatetime() for t in frame["_t"]],
        moved_back=moved_back,
        columns=columns,
    )


def _columns_by_folded(frame: pd.DataFrame) -> dict[str, str]:
    """The file's columns by their ``_folded`` names; the first of any two that fold alike."""
    by_folded: dict[str, str] = {}
    for column in frame.columns:
        by_folded.setdefault(_folded(column), str(column))
    return by_folded


def _kind_column(by_folded: dict[str, str]) -> str | None:
    """A column that says debit or credit, named as imports know one."""
    return next((by_folded[n] for n in map(_folded, SYNONYMS["type"]) if n in by_folded), None)


def _money_out(amounts: pd.Series, kinds: pd.Series | None) -> pd.Series:
    """Each amount, positive where money went out, as imports read them: by its sign
    (``negative_is_money_out``); amounts without a sign, by the debit or credit ``kinds`` says,
    where it says one."""
    negative = int((amounts < 0).sum())
    signed = amounts * (-1.0 if negative_is_money_out(negative, len(amounts)) else 1.0)
    if kinds is None or negative:
        return signed
    said = kinds.map(lambda value: direction_of(str(value)) if pd.notna(value) else None)
    magnitude = amounts.abs()
    chosen = np.select([said == "debit", said == "credit"], [magnitude, -magnitude], signed)
    return pd.Series(chosen, index=amounts.index)


def _weeks_back(last: datetime, now: datetime) -> timedelta:
    """The whole weeks that bring ``last`` back to ``now`` or before; none if it is already."""
    if last <= now:
        return timedelta(0)
    return timedelta(weeks=math.ceil((last - now) / timedelta(weeks=1)))


def _times(column: pd.Series) -> pd.Series:
    """Dates and times in any common spelling, or seconds since 1970 where the column is
    numbers; NaT where a value is neither."""
    if pd.api.types.is_numeric_dtype(column):
        return pd.to_datetime(column, unit="s", utc=True, errors="coerce")
    return pd.to_datetime(column, utc=True, errors="coerce", format="mixed")


def _amounts(column: pd.Series) -> pd.Series:
    """Numbers, or amounts as exports print them ("$1,234.50", "(12.00)", "-1.234,50" where the
    column's amounts say the decimal mark is a comma); NaN where a value is neither."""
    if pd.api.types.is_numeric_dtype(column):
        return pd.to_numeric(column, errors="coerce").astype(float)
    mark, _, _ = file_decimal_mark(str(v) for v in column.dropna().head(SAMPLE_ROWS))
    decimal_comma = mark == ","

    def amount(value: Any) -> float:
        try:
            return float(parse_amount(str(value), decimal_comma))
        except ValueError:
            return math.nan

    return column.map(amount).astype(float)


def _text(row: dict[str, Any], column: str | None) -> str | None:
    if column is None or column not in row or pd.isna(row[column]):
        return None
    return str(row[column])[:200] or None


def _record(row: dict[str, Any], columns: StreamColumns) -> DemoRecord:
    amount = float(row["_a"])  # positive: money out
    channel = (_text(row, columns.channel) or "card").lower()
    body: dict[str, Any] = {
        "transaction_id": str(row[columns.transaction_id])[:64],
        "account_id": str(row[columns.account])[:64],
        "timestamp": row["_t"].isoformat(),
        "amount": f"{max(abs(amount), 0.01):.2f}",
        "direction": "credit" if amount < 0 else "debit",
        "channel": channel if channel in CHANNELS else "other",
    }
    if merchant := _text(row, columns.merchant):
        body["merchant"] = merchant
    return DemoRecord(user_id=_text(row, columns.user) or EVAL_USER, transaction=body)


@dataclass
class StreamQuality:
    rows: int
    frauds: int
    threshold: float
    feedback_delay_days: float | None
    overall: dict[str, dict[str, float]]
    last_days: dict[str, dict[str, float]]
    weekly: list[dict[str, Any]]
    stored: dict[str, float]  # the scores as stored at the end, after every re-scoring
    models: list[str] = field(default_factory=list)
    columns: dict[str, str | None] = field(default_factory=dict)  # which column said what

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def figures(labels: np.ndarray, scores: np.ndarray, flagged: np.ndarray | None) -> dict[str, float]:
    """ROC-AUC, PR-AUC, and with ``flagged``: precision, recall and the alert rate."""
    out = {k: v for k, v in detection_metrics(labels, scores).items() if k != "precision_at_k"}
    if flagged is not None:
        hits = int((labels.astype(bool) & flagged).sum())
        out["precision"] = hits / max(int(flagged.sum()), 1)
        out["recall"] = hits / max(int(labels.sum()), 1)
        out["alert_rate"] = float(flagged.mean()) if len(flagged) else float("nan")
    return out


def quality(
    stream: LabelledStream, live: np.ndarray, flagged: np.ndarray
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]], list[dict[str, Any]]]:
    """The model and both baselines overall, over the last ``LAST_DAYS`` days, and per week."""
    events = [
        TransactionEvent.model_validate(
            {**r.transaction, "user_id": r.user_id, "ingested_at": datetime.now(UTC)}
        )
        for r in stream.records
    ]
    candidates = {
        "spendstream": (live, flagged),
        "amount": (amount_baseline(events), None),
        "account_z": (account_z_baseline(events), None),
    }
    labels = stream.labels
    cut = stream.times[-1] - timedelta(days=LAST_DAYS)
    last = np.asarray([t > cut for t in stream.times])
    overall = {name: figures(labels, s, f) for name, (s, f) in candidates.items()}
    recent = {
        name: figures(labels[last], s[last], None if f is None else f[last])
        for name, (s, f) in candidates.items()
    }
    weeks: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(stream.times):
        weeks[f"{t:%G-W%V}"].append(i)
    weekly = [
        {"week": week, "rows": len(rows), "frauds": int(labels[rows].sum())}
        | {
            name: figures(labels[rows], s[rows], None if f is None else f[rows])
            for name, (s, f) in candidates.items()
        }
        for week, rows in sorted(weeks.items())
    ]
    return overall, recent, weekly


async def _read_scores(
    pool: asyncpg.Pool, records: list[DemoRecord], within_s: float = 600
) -> list[asyncpg.Record]:
    """The stored scores of ``records``, once every one of them is scored."""
    users = [r.user_id for r in records]
    ids = [r.transaction["transaction_id"] for r in records]
    deadline = time.monotonic() + within_s
    while True:
        rows = await pool.fetch(
            """SELECT k.i, s.score, s.is_anomaly, s.model_version
               FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(user_id, transaction_id, i)
               JOIN scores s USING (user_id, transaction_id) ORDER BY k.i""",
            users,
            ids,
        )
        if len(rows) == len(records):
            return list(rows)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{len(records) - len(rows)} transactions unscored after {within_s}s"
            )
        await asyncio.sleep(0.2)


async def _training_caught_up(
    pool: asyncpg.Pool, settings: Settings, within_s: float = TRAINING_WAIT_S
) -> None:
    """Waits while the scorer has a model to train, then until it serves the newest. Live, a day
    of transactions takes a day, and the scorer retrains as its settings say many times over;
    posted at full speed, the whole stream would be scored by the first model or two. So each
    training the scored rows call for (``training_due``) is done before the next day arrives."""
    deadline = time.monotonic() + within_s
    while await training_due(pool, settings):
        if time.monotonic() > deadline:
            log.warning("no model trained within %.0f s of one falling due; going on", within_s)
            return
        await asyncio.sleep(0.5)
    latest = await store.latest_model(pool)
    if latest is None:
        return
    # Served once a score carries it: the scorer re-scores recent rows as soon as it swaps.
    while not await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM scores WHERE model_version = $1)", latest["version"]
    ):
        if time.monotonic() > deadline:
            log.warning("the scorer is not serving model %s; going on", latest["version"])
            return
        await asyncio.sleep(0.2)


class _Feedback:
    """Confirms each fraud ``delay`` of event time after it happened, through the API."""

    def __init__(
        self, api: str, scorer: str, keys: dict[str, str], stream: LabelledStream, delay: timedelta
    ):
        self.api, self.scorer, self.keys, self.delay = api, scorer, keys, delay
        self.pending = deque(i for i in range(len(stream.records)) if stream.labels[i])
        self.stream = stream
        self.sent = 0

    async def due(self, client: httpx.AsyncClient, now: datetime) -> int:
        """Confirms what is due by ``now``, and waits until the scorer knows it."""
        sent = 0
        while self.pending and self.stream.times[self.pending[0]] + self.delay <= now:
            record = self.stream.records[self.pending.popleft()]
            await self._confirm(client, record)
            sent += 1
        self.sent += sent
        if sent:
            await self._remembered(client)
        return sent

    async def _remembered(self, client: httpx.AsyncClient, within_s: float = 60) -> None:
        """Waits until the scorer has taken in every confirmation sent. Live, a day of
        transactions follows a chargeback feed's confirmations over hours, and the scorer takes
        them in within seconds; the day posted at once would be scored before it looked, as if
        the fraud had been confirmed a day later than the delay says."""
        deadline = time.monotonic() + within_s
        while (remembered := await _confirmed_remembered(client, self.scorer)) < self.sent:
            if remembered < 0 or time.monotonic() > deadline:
                log.warning("the scorer has not taken in the confirmations sent; going on")
                return
            await asyncio.sleep(0.1)

    async def _confirm(self, client: httpx.AsyncClient, record: DemoRecord) -> None:
        """One confirmation, waiting as told while the API is busy (429, 503): a chargeback feed
        that gives up on a rate limit would silently confirm less fraud than happened."""
        url = f"{self.api}/v1/anomalies/{record.transaction['transaction_id']}/feedback"
        headers = {"Authorization": f"Bearer {self.keys[record.user_id]}"}
        for _ in range(FEEDBACK_ATTEMPTS):
            response = await client.post(url, json={"label": "fraud"}, headers=headers)
            if response.status_code not in (429, 503):
                break
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        response.raise_for_status()


async def _confirmed_remembered(client: httpx.AsyncClient, scorer: str) -> float:
    """The scorer's count of confirmed fraud taken in, from its metrics; -1 without them."""
    response = await client.get(f"{scorer}/metrics")
    if response.status_code != 200:
        return -1
    return next(
        (
            sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == CONFIRMED_FRAUD_REMEMBERED_METRIC
        ),
        0,
    )


async def _run(
    stack: Stack,
    stream: LabelledStream,
    delay: timedelta | None,
    on_progress: Callable[[int], None],
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Posts day by day; returns live scores, live flags, models seen, and the stored scores."""
    dsn = stack.settings.database.require_url()
    keys = await eval_keys(dsn, sorted({r.user_id for r in stream.records}))
    ingest, api = service_url(stack.settings, "ingest"), service_url(stack.settings, "api")
    scorer = service_url(stack.settings, "scorer")
    feedback = _Feedback(api, scorer, keys, stream, delay) if delay is not None else None
    days: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(stream.times):
        days[t.date().isoformat()].append(i)
    live = np.zeros(len(stream.records))
    flagged = np.zeros(len(stream.records), dtype=bool)
    models: set[str] = set()
    pool = await create_pool(dsn, size=2)
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            for rows in days.values():
                if feedback is not None:
                    await feedback.due(client, stream.times[rows[0]])
                batch = [stream.records[i] for i in rows]
                await post_records(batch, ingest, keys)
                for i, row in zip(rows, await _read_scores(pool, batch), strict=True):
                    live[i], flagged[i] = row["score"], row["is_anomaly"]
                    models.add(row["model_version"])
                on_progress(len(rows))
                await _training_caught_up(pool, stack.settings)
        stored = await _read_scores(pool, stream.records)
    finally:
        await pool.close()
    return live, flagged, sorted(models), np.array([row["score"] for row in stored])


def evaluate_stream(
    stream: LabelledStream,
    *,
    feedback_delay_days: float | None = None,
    on_progress: Callable[[int], None] = lambda _: None,
) -> StreamQuality:
    delay = timedelta(days=feedback_delay_days) if feedback_delay_days is not None else None
    with tempfile.TemporaryDirectory(prefix="spendstream-stream-eval-") as data_dir:
        # The scorer looks for confirmed fraud and new models each second rather than every 5:
        # each day waits for both, which a live day's hours give it anyway. Its metrics say when
        # it has taken the confirmations in.
        settings = isolated_settings(
            Path(data_dir), model_check_interval_s=1.0, expose_metrics=True
        )
        stack = Stack(settings, services=("ingest", "scorer", "api"), durable=False)
        try:
            stack.start_infrastructure()
            for name in ("ingest", "scorer", "api"):
                stack.start_service(name)
            stack.wait_healthy()
            live, flagged, models, stored = asyncio.run(_run(stack, stream, delay, on_progress))
        finally:
            stack.stop()
    overall, recent, weekly = quality(stream, live, flagged)
    return StreamQuality(
        rows=len(stream.records),
        frauds=int(stream.labels.sum()),
        threshold=settings.scorer.anomaly_threshold,
        feedback_delay_days=feedback_delay_days,
        overall=overall,
        last_days=recent,
        weekly=weekly,
        stored=figures(stream.labels, stored, None),
        models=models,
        columns=asdict(stream.columns),
    )
