"""Turning a labelled table into the detectors' input: Spendstream features for transaction
tables, the numeric columns for anything else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from schemas import TransactionEvent
from services.scorer.features import FeatureExtractor
from services.scorer.model_features import MODEL_FEATURES, feature_matrix

TRANSACTION_COLUMNS = {"account_id", "timestamp", "amount"}
TRUE_LABELS = {"1", "true", "yes", "y", "anomaly", "fraud", "outlier"}


@dataclass(frozen=True)
class LabelledTable:
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    derived: bool  # features computed by Spendstream's extractor rather than read


def labels_of(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column):
        return np.asarray(column.fillna(0).to_numpy() != 0, dtype=int)
    return np.asarray(column.astype(str).str.strip().str.lower().isin(TRUE_LABELS), dtype=int)


def transaction_features(frame: pd.DataFrame) -> np.ndarray:
    """Replays the rows, in order, through the scorer's feature extractor."""
    extractor = FeatureExtractor(max_accounts=10**7)
    now = datetime.now(UTC)
    rows = []
    for i, record in enumerate(frame.to_dict("records")):
        event = TransactionEvent.model_validate(
            {
                "transaction_id": str(record.get("transaction_id") or i),
                "account_id": str(record["account_id"]),
                "user_id": str(record.get("user_id") or "user"),
                "timestamp": record["timestamp"],
                "amount": f"{float(record['amount']):.2f}",
                "direction": record.get("direction") or "debit",
                "currency": record.get("currency") or "USD",
                "merchant": _text(record.get("merchant")),
                "description": _text(record.get("description")),
                "category": _text(record.get("category")),
                "country": _text(record.get("country")),
                "ingested_at": now,
            }
        )
        rows.append(extractor.transform(event)[0])
    return feature_matrix(rows)  # no confirmed fraud in a file: those columns are zero


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def load_labelled_table(
    frame: pd.DataFrame, *, label: str, time: str | None = None, drop: Sequence[str] = ()
) -> LabelledTable:
    missing = [c for c in (label, time, *drop) if c is not None and c not in frame.columns]
    if missing:
        raise ValueError(
            f"no column(s) {', '.join(missing)}; the file has {', '.join(frame.columns)}"
        )
    if time is not None:
        order = pd.to_datetime(frame[time], utc=True, errors="coerce", format="mixed")
        if order.isna().all():
            order = pd.to_numeric(frame[time], errors="coerce")
        frame = (
            frame.assign(_order=order).sort_values("_order", kind="stable").drop(columns="_order")
        )
    y = labels_of(frame[label])
    if set(frame.columns) >= TRANSACTION_COLUMNS and not set(drop) & TRANSACTION_COLUMNS:
        return LabelledTable(transaction_features(frame), y, MODEL_FEATURES, derived=True)
    excluded = {label, *drop} | ({time} if time else set())
    numeric = [
        c for c in frame.columns if c not in excluded and pd.api.types.is_numeric_dtype(frame[c])
    ]
    if not numeric:
        raise ValueError("no numeric feature columns left; check --label and --drop")
    X = frame[numeric].astype(float).fillna(0.0).to_numpy()
    return LabelledTable(X, y, tuple(numeric), derived=False)
