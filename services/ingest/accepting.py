"""Handing validated transactions to the broker, and the answer every door gives: 202 once the
broker acknowledged all of them, 503 naming what it did and did not acknowledge."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from prometheus_client import Counter

from schemas import Accepted, Transaction, TransactionSource
from services.ingest.publisher import BrokerUnavailable, TransactionPublisher, stamped

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


async def accept(
    publisher: TransactionPublisher,
    user_id: str,
    transactions: list[Transaction],
    source: TransactionSource,
) -> JSONResponse:
    try:
        await publisher.publish(stamped(transactions, user_id, source))
    except BrokerUnavailable as exc:
        TRANSACTIONS_REJECTED.labels(source.value, "broker_unavailable").inc(
            len(transactions) - len(exc.acknowledged)
        )
        TRANSACTIONS_ACCEPTED.labels(source.value).inc(len(exc.acknowledged))
        acked = set(exc.acknowledged)
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
    return JSONResponse(Accepted(accepted=len(transactions)).model_dump(), status_code=202)
