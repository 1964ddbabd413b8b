"""The scorer's SQL: transactions with their scores, history replay, training data, the registry."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import numpy as np
import orjson

from schemas import CategoryRename, Direction, TransactionChange, TransactionEvent
from services.core.tenancy import MAX_TRAINING_SHARE, MIN_DISTINCT_USERS
from services.scorer.categorize_types import Categorization
from services.scorer.features import merchant_key
from services.scorer.model_features import feature_matrix
from services.scorer.scoring import ScoredTransaction

Key = tuple[str, str]
Touch = tuple[str, str, datetime]  # a changed transaction's user, account and time

# Rows travel as one JSON document per statement: asyncpg's per-element array encoding cost
# more client CPU than scoring's features did, and PostgreSQL's json_to_recordset parses one
# document faster than 28 arrays (bench/results/history.json).
# A transaction sent again changes nothing, unless it is a bank's higher revision: that replaces
# what the bank said, and keeps what the person said (their category, note, exclusion). A removed
# transaction's tombstone keeps any later delivery of it out.
_INSERT_TRANSACTIONS = """
INSERT INTO transactions AS old (
    user_id, transaction_id, account_id, ts, utc_offset_minutes, amount, direction, currency,
    merchant, description, category, category_source, channel, country, metadata, source,
    ingested_at, category_confidence, merchant_key, revision, status)
SELECT u, t, a, ts, o, amt, dir, cur, mer, des, cat, cs, ch, co, meta, src, ing, conf, mk, r, st
FROM ROWS FROM (json_to_recordset($1::json) AS (
    u text, t text, a text, ts timestamptz, o smallint, amt numeric, dir text, cur text,
    mer text, des text, cat text, cs text, ch text, co text, meta jsonb, src text,
    ing timestamptz, conf real, mk text, r int, st text)) WITH ORDINALITY AS x(
    u, t, a, ts, o, amt, dir, cur, mer, des, cat, cs, ch, co, meta, src, ing, conf, mk, r, st, i)
WHERE NOT EXISTS (SELECT 1 FROM removed_transactions d WHERE d.user_id = u AND d.transaction_id = t)
-- seq numbers the rows in the batch's order, which replaying histories relies on: the anti-join
-- with the tombstones may otherwise hand them over in another order
ORDER BY i
ON CONFLICT (user_id, transaction_id) DO UPDATE SET
    ts = excluded.ts, utc_offset_minutes = excluded.utc_offset_minutes,
    amount = excluded.amount, direction = excluded.direction, currency = excluded.currency,
    merchant = excluded.merchant, description = excluded.description, channel = excluded.channel,
    country = excluded.country, metadata = excluded.metadata, merchant_key = excluded.merchant_key,
    revision = excluded.revision, status = excluded.status,
    category = CASE WHEN old.category_source = 'user' THEN old.category ELSE excluded.category END,
    category_source = CASE WHEN old.category_source = 'user' THEN 'user'
                           ELSE excluded.category_source END,
    category_confidence = CASE WHEN old.category_source = 'user' THEN old.category_confidence
                               ELSE excluded.category_confidence END
WHERE excluded.revision > old.revision
"""

_INSERT_SCORES = """
INSERT INTO scores AS old (
    user_id, transaction_id, score, is_anomaly, severity, detector_scores, explanation,
    model_version, features, historical, revision)
SELECT u, t, s, an, sev, d, e, v, f, h, r
FROM json_to_recordset($1::json) AS x(
    u text, t text, s real, an boolean, sev text, d jsonb, e jsonb, v text, f real[], h boolean,
    r int)
WHERE NOT EXISTS (SELECT 1 FROM removed_transactions d WHERE d.user_id = u AND d.transaction_id = t)
ON CONFLICT (user_id, transaction_id) DO UPDATE SET
    score = excluded.score, is_anomaly = excluded.is_anomaly, severity = excluded.severity,
    detector_scores = excluded.detector_scores, explanation = excluded.explanation,
    model_version = excluded.model_version, features = excluded.features,
    historical = excluded.historical, revision = excluded.revision, scored_at = now()
WHERE excluded.revision > old.revision
"""


def _offset_minutes(event: TransactionEvent) -> int:
    offset = event.timestamp.utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


def _transaction_row(event: TransactionEvent, how: Categorization) -> dict[str, Any]:
    return {
        "u": event.user_id,
        "t": event.transaction_id,
        "a": event.account_id,
        "ts": event.timestamp,
        "o": _offset_minutes(event),
        "amt": str(event.amount),
        "dir": event.direction.value,
        "cur": event.currency,
        "mer": event.merchant,
        "des": event.description,
        "cat": event.category,
        "cs": how.source,
        "ch": event.channel.value,
        "co": event.country,
        "meta": event.metadata,
        "src": event.source.value,
        "ing": event.ingested_at,
        "conf": how.confidence,
        "mk": merchant_key(event) if (event.merchant or event.description) else None,
        "r": event.revision,
        "st": event.status,
    }


def _score_row(event: TransactionEvent, scored: ScoredTransaction) -> dict[str, Any]:
    return {
        "u": event.user_id,
        "t": event.transaction_id,
        "s": scored.score,
        "an": scored.is_anomaly,
        "sev": scored.severity,
        "d": scored.detector_scores,
        "e": scored.explanation,
        "v": scored.model_version,
        "f": scored.features,
        "h": scored.historical,
        "r": event.revision,
    }


async def persist_scored(
    pool: asyncpg.Pool,
    events: Sequence[TransactionEvent],
    scores: Sequence[ScoredTransaction],
    categorized: Mapping[Key, Categorization] | None = None,
    drift_span: timedelta = timedelta(days=35),
) -> None:
    """Write transactions and their scores in one database transaction, idempotently.

    ``categorized`` says how categories the client did not send were decided."""
    decided = categorized or {}
    transactions = orjson.dumps(
        [
            _transaction_row(
                e,
                decided.get((e.user_id, e.transaction_id))
                or Categorization("provided" if e.category else "none"),
            )
            for e in events
        ]
    ).decode()
    scored = orjson.dumps([_score_row(e, s) for e, s in zip(events, scores, strict=True)]).decode()
    revised = [(e.user_id, e.account_id, e.timestamp) for e in events if e.revision > 1]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_INSERT_TRANSACTIONS, transactions)
        await conn.execute(_INSERT_SCORES, scored)
        await touch_accounts(conn, revised, drift_span)


@dataclass(frozen=True)
class StoredState:
    """What the database already holds of a batch's transactions."""

    scores: dict[Key, ScoredTransaction]  # stored at this revision or a later one
    removed: set[Key]  # removed for good: nothing of them is scored or stored again

    def known(self, event: TransactionEvent) -> bool:
        key = (event.user_id, event.transaction_id)
        return key in self.removed or key in self.scores


async def already_stored(pool: asyncpg.Pool, events: Sequence[TransactionEvent]) -> StoredState:
    """The stored scores of the events processed before (re-delivered or re-sent, at the same
    revision or a lower one), and which were removed. A higher revision is not "stored": it is
    scored again."""
    rows = await pool.fetch(
        """SELECT k.user_id, k.transaction_id, k.revision AS sent, s.revision AS stored,
                  s.score, s.is_anomaly, s.severity, s.detector_scores, s.explanation,
                  s.model_version, s.historical, r.user_id IS NOT NULL AS removed
           FROM unnest($1::text[], $2::text[], $3::int[]) AS k(user_id, transaction_id, revision)
           LEFT JOIN scores s USING (user_id, transaction_id)
           LEFT JOIN removed_transactions r USING (user_id, transaction_id)
           WHERE s.user_id IS NOT NULL OR r.user_id IS NOT NULL""",
        [e.user_id for e in events],
        [e.transaction_id for e in events],
        [e.revision for e in events],
    )
    scores = {
        (r["user_id"], r["transaction_id"]): ScoredTransaction(
            score=r["score"],
            is_anomaly=r["is_anomaly"],
            severity=r["severity"],
            model_version=r["model_version"],
            detector_scores=r["detector_scores"],
            explanation=r["explanation"],
            features=[],  # not needed again
            historical=r["historical"],
        )
        for r in rows
        if not r["removed"] and r["stored"] is not None and r["stored"] >= r["sent"]
    }
    return StoredState(scores, {(r["user_id"], r["transaction_id"]) for r in rows if r["removed"]})


# A change makes its account's drift windows that hold the changed time stale: they go, and the
# change is recorded as new data for the watcher (and the cluster job) to pick up.
_TOUCH = """
WITH touched AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS t(user_id, account_id, ts)
), stale AS (
    DELETE FROM drift_metrics d USING touched t
    WHERE ((d.scope = 'account' AND d.user_id = t.user_id AND d.account_id = t.account_id)
           OR d.scope = 'global')
      AND d.window_end > t.ts AND d.window_end <= t.ts + $4::interval
)
INSERT INTO account_changes (user_id, account_id, ts) SELECT user_id, account_id, ts FROM touched
"""

_EDIT = """
UPDATE transactions SET
    category = CASE WHEN $3 THEN $4 ELSE category END,
    category_source = CASE WHEN $3 THEN 'user' ELSE category_source END,
    category_confidence = CASE WHEN $3 THEN 1.0 ELSE category_confidence END,
    note = CASE WHEN $5 THEN $6 ELSE note END,
    excluded = CASE WHEN $7 THEN $8 ELSE excluded END,
    display_merchant = CASE WHEN $9 THEN $10 ELSE display_merchant END
WHERE user_id = $1 AND transaction_id = $2
RETURNING account_id, ts, merchant_key
"""

# A person's category teaches: it becomes their rule for the merchant, and optionally goes to the
# merchant's earlier transactions whose category was only predicted or missing.
_RULE = """
INSERT INTO category_rules (user_id, merchant_key, category) VALUES ($1, $2, $3)
ON CONFLICT (user_id, merchant_key) DO UPDATE SET category = excluded.category, updated_at = now()
"""
_APPLY_RULE = """
UPDATE transactions SET category = $3, category_source = 'rule', category_confidence = 1.0
WHERE user_id = $1 AND merchant_key = $2 AND category_source IN ('predicted', 'none')
RETURNING account_id, ts
"""
_RENAME = """
UPDATE transactions SET category = $4
WHERE user_id = $1 AND account_id = $2 AND category = $3
RETURNING account_id, ts
"""


async def _rename(conn: asyncpg.Connection, rename: CategoryRename) -> list[Touch]:
    await conn.execute(
        "UPDATE category_rules SET category = $3 WHERE user_id = $1 AND category = $2",
        rename.user_id,
        rename.old_name,
        rename.new_name,
    )
    rows = await conn.fetch(
        _RENAME, rename.user_id, rename.account_id, rename.old_name, rename.new_name
    )
    earliest = min((r["ts"] for r in rows), default=None)
    return [] if earliest is None else [(rename.user_id, rename.account_id, earliest)]


async def _learn(
    conn: asyncpg.Connection, change: TransactionChange, merchant: str | None
) -> list[Touch]:
    edit = change.edit()
    if edit.category is None or not merchant:
        return []
    await conn.execute(_RULE, change.user_id, merchant, edit.category)
    if not edit.apply_to_merchant:
        return []
    rows = await conn.fetch(_APPLY_RULE, change.user_id, merchant, edit.category)
    return [(change.user_id, r["account_id"], r["ts"]) for r in rows]


async def apply_changes(
    pool: asyncpg.Pool, changes: Sequence[TransactionChange | CategoryRename], drift_span: timedelta
) -> None:
    """Edits and removals, in order, in one database transaction. A removal deletes the
    transaction with its score and verdict, and leaves a tombstone. ``drift_span`` is how long
    after a transaction's time drift windows still hold it."""
    touched: list[Touch] = []
    async with pool.acquire() as conn, conn.transaction():
        for change in changes:
            if isinstance(change, CategoryRename):
                touched += await _rename(conn, change)
                continue
            key = (change.user_id, change.transaction_id)
            if change.kind == "remove":
                await conn.execute(
                    """INSERT INTO removed_transactions (user_id, transaction_id)
                       VALUES ($1, $2) ON CONFLICT DO NOTHING""",
                    *key,
                )
                for table in ("scores", "feedback"):
                    await conn.execute(
                        f"DELETE FROM {table} WHERE user_id = $1 AND transaction_id = $2",  # noqa: S608
                        *key,
                    )
                gone = await conn.fetchrow(
                    """DELETE FROM transactions WHERE user_id = $1 AND transaction_id = $2
                       RETURNING account_id, ts""",
                    *key,
                )
                if gone is not None:
                    touched.append((change.user_id, gone["account_id"], gone["ts"]))
                continue
            edit = change.edit()
            sent = edit.model_fields_set
            edited = await conn.fetchrow(
                _EDIT,
                *key,
                "category" in sent,
                edit.category,
                "note" in sent,
                edit.note,
                "excluded" in sent,
                edit.excluded,
                "merchant" in sent,
                edit.merchant,
            )
            if edited is not None and sent & {"category", "excluded"}:
                touched.append((change.user_id, edited["account_id"], edited["ts"]))
            if edited is not None:
                touched += await _learn(conn, change, edited["merchant_key"])
        await touch_accounts(conn, touched, drift_span)


async def touch_accounts(
    conn: asyncpg.Connection, touched: Sequence[Touch], drift_span: timedelta
) -> None:
    """Record changed transactions' accounts and times for drift and clusters (see _TOUCH)."""
    if touched:
        await conn.execute(
            _TOUCH,
            [t[0] for t in touched],
            [t[1] for t in touched],
            [t[2] for t in touched],
            drift_span,
        )


async def account_histories(
    pool: asyncpg.Pool, accounts: Sequence[Key], per_account: int
) -> list[TransactionEvent]:
    """The latest ``per_account`` stored transactions of each account, oldest first per account,
    in the order the scorer processed them."""
    rows = await pool.fetch(
        """SELECT t.* FROM unnest($1::text[], $2::text[]) AS a(user_id, account_id)
           CROSS JOIN LATERAL (
               SELECT * FROM transactions x
               WHERE x.user_id = a.user_id AND x.account_id = a.account_id
               ORDER BY x.seq DESC LIMIT $3) t
           ORDER BY t.user_id, t.account_id, t.seq""",
        [a[0] for a in accounts],
        [a[1] for a in accounts],
        per_account,
    )
    return [
        TransactionEvent.model_construct(
            transaction_id=r["transaction_id"],
            account_id=r["account_id"],
            user_id=r["user_id"],
            timestamp=r["ts"].astimezone(timezone(timedelta(minutes=r["utc_offset_minutes"]))),
            amount=r["amount"],
            direction=Direction(r["direction"]),
            currency=r["currency"],
            merchant=r["merchant"],
            description=r["description"],
            category=r["category"],
            country=r["country"],
            ingested_at=r["ingested_at"],
        )
        for r in rows
    ]


async def training_matrix(
    pool: asyncpg.Pool, limit: int, legit_weight: int, max_user_share: float = MAX_TRAINING_SHARE
) -> np.ndarray:
    """Feature rows of the latest ``limit`` scored transactions, oldest first. Transactions
    labelled fraud are left out; those labelled legit count ``legit_weight`` times. No user
    contributes more than ``max_user_share`` of ``limit`` rows (weights included), newest kept:
    the model is shared, and no one user may decide what is normal for everyone. Among fewer
    users than that share allows (one user: all of it), each may fill an equal part of
    ``limit``: their share cannot be smaller, and a smaller cap would only train the model on
    less data (a bank posting every card as one user)."""
    rows = await pool.fetch(
        """SELECT s.user_id, s.features, f.label FROM (
               SELECT user_id, transaction_id, features, scored_at FROM scores
               WHERE features IS NOT NULL ORDER BY scored_at DESC LIMIT $1) s
           LEFT JOIN feedback f USING (user_id, transaction_id)
           WHERE f.label IS DISTINCT FROM 'fraud'
           ORDER BY s.scored_at DESC""",
        limit,
    )
    users = len({row["user_id"] for row in rows})
    cap = max(1, math.ceil(limit * max(max_user_share, 1 / max(users, 1))))
    taken: Counter[str] = Counter()
    vectors = []
    for row in rows:  # newest first
        weight = min(legit_weight if row["label"] == "legit" else 1, cap - taken[row["user_id"]])
        if weight > 0:
            taken[row["user_id"]] += weight
            vectors.extend([row["features"]] * weight)
    vectors.reverse()
    return feature_matrix(vectors)


@dataclass(frozen=True)
class LabelledRows:
    """Rows whose fraud label is known, for the supervised model: oldest first."""

    X: np.ndarray
    labels: list[int]
    users: list[str]


async def labelled_rows(pool: asyncpg.Pool, limit: int) -> LabelledRows:
    """The latest ``limit`` scored transactions up to the newest confirmed fraud (by event
    time): after it, nobody has had time to look yet, so an unlabelled row is not yet legit."""
    rows = await pool.fetch(
        """WITH horizon AS (
               SELECT max(t.ts) AS ts FROM feedback f
               JOIN transactions t USING (user_id, transaction_id) WHERE f.label = 'fraud')
           SELECT s.user_id, s.features, f.label FROM scores s
           JOIN transactions t USING (user_id, transaction_id)
           LEFT JOIN feedback f USING (user_id, transaction_id)
           WHERE s.features IS NOT NULL AND t.ts <= (SELECT ts FROM horizon)
           ORDER BY s.scored_at DESC LIMIT $1""",
        limit,
    )
    rows = rows[::-1]
    return LabelledRows(
        X=feature_matrix([row["features"] for row in rows]),
        labels=[int(row["label"] == "fraud") for row in rows],
        users=[row["user_id"] for row in rows],
    )


async def confirmed_fraud_since(
    pool: asyncpg.Pool, since: datetime | None, limit: int = 100_000
) -> list[asyncpg.Record]:
    """Fraud confirmed (or changed) after ``since``, with what the scorer remembers of it."""
    return list(
        await pool.fetch(
            """SELECT f.user_id, f.transaction_id, f.updated_at, t.account_id, t.merchant,
                      t.description, t.ts
               FROM feedback f JOIN transactions t USING (user_id, transaction_id)
               WHERE f.label = 'fraud' AND ($1::timestamptz IS NULL OR f.updated_at > $1)
               ORDER BY f.updated_at LIMIT $2""",
            since,
            limit,
        )
    )


async def merchant_traffic(
    pool: asyncpg.Pool, keys: Sequence[tuple[str, str, str, datetime]]
) -> list[asyncpg.Record]:
    """Per (user, merchant, day since the epoch): the user's transactions there, from ``since``
    on. ``keys`` are (user, merchant key, merchant as printed, since); a merchant printed
    several ways has one key per way, and its days add up."""
    if not keys:
        return []
    users, merchants, printed, since = (list(column) for column in zip(*keys, strict=True))
    # The owners' transactions since the earliest window opened, by the (user, time) index, then
    # matched to the merchants: not every owner's whole history once per merchant.
    return list(
        await pool.fetch(
            """SELECT k.user_id, k.merchant,
                      floor(extract(epoch FROM t.ts) / 86400)::bigint AS day, count(*) AS n
               FROM transactions t
               JOIN unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
                    AS k(user_id, merchant, printed, since)
                 ON t.user_id = k.user_id
                AND coalesce(nullif(t.merchant, ''), t.description) = k.printed
               WHERE t.user_id = ANY($1::text[]) AND t.ts >= $5 AND t.ts >= k.since
               GROUP BY 1, 2, 3""",
            users,
            merchants,
            printed,
            since,
            min(since),
        )
    )


async def stale_scores(
    pool: asyncpg.Pool, version: str, days: int, limit: int
) -> list[asyncpg.Record]:
    """Scores made in the last ``days`` (by the database's clock, which stamped them) by any
    model but ``version``, oldest first, with what the re-scoring and its alerts need."""
    return list(
        await pool.fetch(
            """SELECT s.user_id, s.transaction_id, s.features, s.detector_scores, s.explanation,
                      s.is_anomaly, s.historical, t.account_id, t.ts, t.utc_offset_minutes,
                      t.amount, t.currency, t.merchant, t.category
               FROM scores s JOIN transactions t USING (user_id, transaction_id)
               WHERE s.scored_at >= now() - make_interval(days => $2)
                 AND s.model_version <> $1 AND s.features IS NOT NULL
               ORDER BY s.scored_at LIMIT $3""",
            version,
            days,
            limit,
        )
    )


_RESCORE = """
UPDATE scores AS s
SET score = x.s, is_anomaly = x.an, severity = x.sev, detector_scores = x.d,
    explanation = x.e, model_version = $2
FROM json_to_recordset($1::json) AS x(u text, t text, s real, an boolean, sev text, d jsonb,
                                       e jsonb)
WHERE s.user_id = x.u AND s.transaction_id = x.t AND s.model_version <> $2
"""


async def update_scores(pool: asyncpg.Pool, version: str, results: Sequence[Any]) -> None:
    """The new model's scores; the original scoring time stays."""
    payload = orjson.dumps(
        [
            {
                "u": r.user_id,
                "t": r.transaction_id,
                "s": r.score,
                "an": r.is_anomaly,
                "sev": r.severity,
                "d": r.detector_scores,
                "e": r.explanation,
            }
            for r in results
        ]
    ).decode()
    await pool.execute(_RESCORE, payload, version)


async def scored_since(pool: asyncpg.Pool, since: datetime) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM scores WHERE scored_at > $1", since))


async def rows_scored(pool: asyncpg.Pool, column: int, at_least: float) -> tuple[int, int]:
    """Scored rows, and how many of them have feature ``column`` (0-based) at least
    ``at_least``, in one pass."""
    row = await pool.fetchrow(
        "SELECT count(*), count(*) FILTER (WHERE features[$1] >= $2) FROM scores",
        column + 1,
        at_least,
    )
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)


async def latest_model(pool: asyncpg.Pool) -> asyncpg.Record | None:
    """The newest registered model, with the feature columns it reads (null for models from
    before they were recorded) and its age in seconds by the database's clock, the one that
    stamped it: a scorer whose own clock is off would retrain too soon or too late."""
    return await pool.fetchrow(
        "SELECT version, created_at, training_rows, metrics->'features' AS features,"
        " extract(epoch FROM now() - created_at)::float8 AS age_s"
        " FROM anomaly_models ORDER BY created_at DESC LIMIT 1"
    )


async def model_artifact(pool: asyncpg.Pool, version: str) -> bytes:
    return bytes(
        await pool.fetchval("SELECT artifact FROM anomaly_models WHERE version = $1", version)
    )


async def save_model(
    conn: asyncpg.Connection,
    version: str,
    training_rows: int,
    metrics: dict[str, Any],
    artifact: bytes,
    trained_by: str,
) -> None:
    await conn.execute(
        """INSERT INTO anomaly_models (version, training_rows, metrics, artifact, trained_by)
           VALUES ($1, $2, $3, $4, $5)""",
        version,
        training_rows,
        metrics,
        artifact,
        trained_by,
    )


# Drift ------------------------------------------------------------------------------------------

_WINDOW_SCOPE = (
    "($1::text IS NULL OR (user_id = $1 AND account_id = $2::text)) AND direction = 'debit'"
    " AND NOT excluded"
)


async def drift_progress(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT last_seq FROM drift_progress WHERE id = 1"))


async def set_drift_progress(pool: asyncpg.Pool, last_seq: int) -> None:
    await pool.execute("UPDATE drift_progress SET last_seq = $1 WHERE id = 1", last_seq)


async def accounts_with_new_data(
    pool: asyncpg.Pool, after_seq: int
) -> tuple[list[asyncpg.Record], int]:
    """Accounts with transactions stored after ``after_seq``, with the earliest and latest
    event time among them."""
    rows = await pool.fetch(
        """SELECT user_id, account_id, min(ts) AS earliest, max(watermark) AS watermark,
                  max(seq) AS last_seq
           FROM (SELECT user_id, account_id, ts, ts AS watermark, seq
                 FROM transactions WHERE seq > $1
                 UNION ALL
                 -- a change: the windows from its time up to the account's latest data
                 SELECT c.user_id, c.account_id, c.ts,
                        greatest(c.ts, (SELECT max(t.ts) FROM transactions t
                                        WHERE t.user_id = c.user_id
                                          AND t.account_id = c.account_id)),
                        c.seq
                 FROM account_changes c WHERE c.seq > $1) new
           GROUP BY user_id, account_id""",
        after_seq,
    )
    return list(rows), max((r["last_seq"] for r in rows), default=after_seq)


async def drift_window_rows(
    pool: asyncpg.Pool,
    user_id: str | None,
    account_id: str | None,
    start: datetime | None,
    end: datetime,
    *,
    skip: int = 0,
    limit: int | None = None,
    sample: int = 20_000,
) -> list[tuple[str, float]]:
    """(category, amount) of the debits in (start, end], or of the ``limit`` latest before ``end``
    after skipping ``skip``. Large windows are sampled deterministically (by hashed id)."""
    if limit is not None:
        rows = await pool.fetch(
            f"""SELECT coalesce(category, 'Uncategorized') AS category, amount::float8 AS amount
                FROM transactions WHERE {_WINDOW_SCOPE} AND ts <= $3
                ORDER BY ts DESC, transaction_id DESC OFFSET $4 LIMIT $5""",  # noqa: S608
            user_id,
            account_id,
            end,
            skip,
            limit,
        )
    else:
        rows = await pool.fetch(
            f"""SELECT coalesce(category, 'Uncategorized') AS category, amount::float8 AS amount
                FROM transactions WHERE {_WINDOW_SCOPE} AND ts > $3 AND ts <= $4
                ORDER BY hashtextextended(transaction_id, 0) LIMIT $5""",  # noqa: S608
            user_id,
            account_id,
            start,
            end,
            sample,
        )
    return [(r["category"], r["amount"]) for r in rows]


async def drift_computed(
    pool: asyncpg.Pool, scope: str, user_id: str, account_id: str, window_end: datetime
) -> bool:
    return bool(
        await pool.fetchval(
            """SELECT EXISTS (SELECT 1 FROM drift_metrics WHERE scope = $1 AND user_id = $2
                              AND account_id = $3 AND window_end = $4)""",
            scope,
            user_id,
            account_id,
            window_end,
        )
    )


async def save_drift(pool: asyncpg.Pool, row: dict[str, Any]) -> bool:
    """Store one comparison; False if this scope and window were already stored."""
    status = await pool.execute(
        """INSERT INTO drift_metrics (
               scope, user_id, account_id, window_end, current_start, reference_start,
               reference_end, window_mode, status, n_current, n_reference, category_jsd,
               category_psi, amount_jsd, amount_ks, amount_ks_pvalue, amount_wasserstein,
               top_contributors, breached, threshold)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                   $18, $19, $20)
           ON CONFLICT DO NOTHING""",
        row["scope"],
        row["user_id"],
        row["account_id"],
        row["window_end"],
        row["current_start"],
        row["reference_start"],
        row["reference_end"],
        row["window_mode"],
        row["status"],
        row["n_current"],
        row["n_reference"],
        row.get("category_jsd"),
        row.get("category_psi"),
        row.get("amount_jsd"),
        row.get("amount_ks"),
        row.get("amount_ks_pvalue"),
        row.get("amount_wasserstein"),
        row["top_contributors"],
        row["breached"],
        row["threshold"],
    )
    return bool(status.endswith(" 1"))


# Categories -------------------------------------------------------------------------------------


async def labelled_merchants(
    pool: asyncpg.Pool, limit: int, min_users: int = MIN_DISTINCT_USERS
) -> list[asyncpg.Record]:
    """Merchants whose category at least ``min_users`` distinct users gave, each with the
    category most of its users gave: an aggregate no single user's labels show through."""
    return list(
        await pool.fetch(
            """SELECT merchant_key, category FROM (
                   SELECT merchant_key, category, count(DISTINCT user_id) AS users,
                          row_number() OVER (PARTITION BY merchant_key
                                             ORDER BY count(DISTINCT user_id) DESC, category)
                              AS preference
                   FROM transactions
                   WHERE category_source = 'provided' AND merchant_key IS NOT NULL
                     AND merchant_key <> ''
                   GROUP BY merchant_key, category) agreed
               WHERE preference = 1 AND users >= $2
               ORDER BY users DESC, merchant_key LIMIT $1""",
            limit,
            min_users,
        )
    )


async def category_rules(
    pool: asyncpg.Pool, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """For (user, merchant key) pairs: the user's own rule for that merchant, from a correction."""
    rows = await pool.fetch(
        """SELECT r.user_id, r.merchant_key, r.category
           FROM unnest($1::text[], $2::text[]) AS k(user_id, merchant_key)
           JOIN category_rules r USING (user_id, merchant_key)""",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    return {(r["user_id"], r["merchant_key"]): r["category"] for r in rows}


async def category_aliases(pool: asyncpg.Pool, users: Sequence[str]) -> dict[Key, str]:
    """(user, old name) -> new name, for the users' renamed and merged categories."""
    rows = await pool.fetch(
        "SELECT user_id, old_name, new_name FROM category_aliases WHERE user_id = ANY($1::text[])",
        list(users),
    )
    return {(r["user_id"], r["old_name"]): r["new_name"] for r in rows}


async def explicit_categories(
    pool: asyncpg.Pool, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """For (user, merchant key) pairs: the category the user last gave that merchant."""
    rows = await pool.fetch(
        """SELECT DISTINCT ON (t.user_id, t.merchant_key) t.user_id, t.merchant_key, t.category
           FROM unnest($1::text[], $2::text[]) AS k(user_id, merchant_key)
           JOIN transactions t ON t.user_id = k.user_id AND t.merchant_key = k.merchant_key
           WHERE t.category_source = 'provided'
           ORDER BY t.user_id, t.merchant_key, t.stored_at DESC""",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    return {(r["user_id"], r["merchant_key"]): r["category"] for r in rows}


@dataclass(frozen=True)
class PostgresScoreStore:
    """The scoring pipeline's store port over PostgreSQL. ``drift_span`` is how long after a
    transaction's time drift windows still hold it: a change to it makes those windows stale."""

    pool: asyncpg.Pool
    drift_span: timedelta

    async def already_stored(self, events: Sequence[TransactionEvent]) -> StoredState:
        return await already_stored(self.pool, events)

    async def persist(
        self,
        events: Sequence[TransactionEvent],
        scores: Sequence[ScoredTransaction],
        categorized: Mapping[Key, Categorization],
    ) -> None:
        await persist_scored(self.pool, events, scores, categorized, self.drift_span)

    async def apply_changes(self, changes: Sequence[TransactionChange | CategoryRename]) -> None:
        await apply_changes(self.pool, changes, self.drift_span)
