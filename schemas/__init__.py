"""Event contracts, the only place they are defined."""

from pydantic import BaseModel

from schemas.events import AnomalyAlert, DeadLetter, DriftEvent
from schemas.transaction import (
    SCHEMA_VERSION,
    Accepted,
    Channel,
    Direction,
    Transaction,
    TransactionBatch,
    TransactionEvent,
    TransactionSource,
)

EVENT_MODELS: dict[str, type[BaseModel]] = {
    "Transaction": Transaction,
    "TransactionBatch": TransactionBatch,
    "TransactionEvent": TransactionEvent,
    "DeadLetter": DeadLetter,
    "AnomalyAlert": AnomalyAlert,
    "DriftEvent": DriftEvent,
}

__all__ = [
    "EVENT_MODELS",
    "SCHEMA_VERSION",
    "Accepted",
    "AnomalyAlert",
    "Channel",
    "DeadLetter",
    "Direction",
    "DriftEvent",
    "Transaction",
    "TransactionBatch",
    "TransactionEvent",
    "TransactionSource",
]
