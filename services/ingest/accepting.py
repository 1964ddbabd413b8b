"""Handing validated transactions to the broker, and the answer every door gives: 202 once the
broker acknowledged all of them, 503 naming what it did and did not acknowledge."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import asyncpg
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from schemas import Accepted, Transaction, TransactionChange, TransactionSource
from services.core.http import validation_error_body
from services.core.publisher import BrokerUnavailable, Message, TransactionPublisher
from services.ingest import store
from services.ingest.publisher import stamped

RETRY_AFTER_SECONDS = "5"

TRANSACTIONS_ACCEPTED = Counter(
    "spendstream_ingest_transactions_accepted_total",
    "Transactions acknowledged by the broker.",
    ["source"],
)
TRANSACTIONS_REJECTED = Counter(
    "spendstream_ingest_transactions_rejected_total",
    "Transactions refused, by reason.",
    ["source", "reason"],
)


class UnknownRemoval(Exception):
    """A removal names a transaction that is neither stored nor in the same request."""

    def __init__(self, index: int, transaction_id: str):
        super().__init__(
            f"no transaction {transaction_id!r} (yet): a removal names a stored transaction or "
            "one in the same request; if it was sent moments ago, retry shortly"
        )
        self.index = index

    def response(self) -> JSONResponse:
        error = {"loc": ["body", "removed", self.index], "msg": str(self), "type": "not_found"}
        return JSONResponse(validation_error_body([error]), status_code=422)


async def removals(
    pool: asyncpg.Pool,
    user_id: str,
    transactions: Sequence[Transaction],
    removed: Sequence[str],
    source: Literal["api", "webhook"],
) -> list[TransactionChange]:
    """The change events removing ``removed``, each keyed by its transaction's account; raises
    ``UnknownRemoval`` for an id neither stored nor in ``transactions``."""
    if not removed:
        return []
    account = {t.transaction_id: t.account_id for t in transactions}
    account |= await store.accounts_of(pool, user_id, [i for i in removed if i not in account])
    now = datetime.now(UTC)
    changes = []
    for index, transaction_id in enumerate(removed):
        if transaction_id not in account:
            raise UnknownRemoval(index, transaction_id)
        changes.append(
            TransactionChange(
                kind="remove",
                change_id=uuid.uuid4().hex,
                user_id=user_id,
                account_id=account[transaction_id],
                transaction_id=transaction_id,
                source=source,
                requested_at=now,
            )
        )
    return changes


def change_messages(changes: Sequence[TransactionChange]) -> list[Message]:
    return [(c.account_id.encode(), c.model_dump_json().encode()) for c in changes]


async def accept(
    publisher: TransactionPublisher,
    user_id: str,
    transactions: list[Transaction],
    source: TransactionSource,
    changes: Sequence[TransactionChange] = (),
) -> JSONResponse:
    """Publish the transactions, then the changes (so a removal follows what it removes)."""
    try:
        await publisher.publish(
            [*stamped(transactions, user_id, source), *change_messages(changes)]
        )
    except BrokerUnavailable as exc:
        acked = {i for i in exc.acknowledged if i < len(transactions)}
        TRANSACTIONS_REJECTED.labels(source.value, "broker_unavailable").inc(
            len(transactions) - len(acked)
        )
        TRANSACTIONS_ACCEPTED.labels(source.value).inc(len(acked))
        return JSONResponse(
            {
                "detail": f"{exc}; retry the whole request: transaction ids make it safe, "
                "those already acknowledged change nothing",
                "acknowledged": [
                    tx.transaction_id for i, tx in enumerate(transactions) if i in acked
                ],
                "unconfirmed": [
                    tx.transaction_id for i, tx in enumerate(transactions) if i not in acked
                ],
            },
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    TRANSACTIONS_ACCEPTED.labels(source.value).inc(len(transactions))
    answer = Accepted(accepted=len(transactions), removed=len(changes))
    # {"accepted": n} as it always was, unless the request removed something
    return JSONResponse(
        answer.model_dump(exclude=None if changes else {"removed"}), status_code=202
    )
