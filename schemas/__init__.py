"""Event contracts, the only place they are defined."""

from pydantic import BaseModel

from schemas.changes import CategoryRename, CategoryRenameIn, TransactionChange, TransactionEdit
from schemas.events import AnomalyAlert, BudgetAlert, DeadLetter, DriftEvent, ForecastsUpdated
from schemas.transaction import (
    SCHEMA_VERSION,
    Accepted,
    Channel,
    Direction,
    Transaction,
    TransactionBatch,
    TransactionEvent,
    TransactionSource,
    WebhookPayload,
)

EVENT_MODELS: dict[str, type[BaseModel]] = {
    "Transaction": Transaction,
    "TransactionBatch": TransactionBatch,
    "TransactionEvent": TransactionEvent,
    "WebhookPayload": WebhookPayload,
    "DeadLetter": DeadLetter,
    "AnomalyAlert": AnomalyAlert,
    "DriftEvent": DriftEvent,
    "ForecastsUpdated": ForecastsUpdated,
    "BudgetAlert": BudgetAlert,
    "TransactionChange": TransactionChange,
    "TransactionEdit": TransactionEdit,
    "CategoryRename": CategoryRename,
    "CategoryRenameIn": CategoryRenameIn,
}

__all__ = [
    "EVENT_MODELS",
    "SCHEMA_VERSION",
    "Accepted",
    "AnomalyAlert",
    "BudgetAlert",
    "CategoryRename",
    "CategoryRenameIn",
    "Channel",
    "DeadLetter",
    "Direction",
    "DriftEvent",
    "ForecastsUpdated",
    "Transaction",
    "TransactionBatch",
    "TransactionChange",
    "TransactionEdit",
    "TransactionEvent",
    "TransactionSource",
    "WebhookPayload",
]
