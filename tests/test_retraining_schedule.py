"""When the next anomaly model falls due, and the evaluation's stack, where none may."""

import math
from pathlib import Path

import numpy as np
import pytest

from services.devstack.pipeline_eval import eval_settings
from services.scorer.ensemble import (
    FIRST_MODEL_HISTORY,
    first_model_due,
    is_mature,
    rows_before_retraining,
)
from services.scorer.features import FEATURE_NAMES


def test_a_young_installation_retrains_as_its_data_doubles() -> None:
    assert rows_before_retraining(1_000, 1_000, 5_000) == 1_000
    assert rows_before_retraining(3_000, 1_000, 5_000) == 3_000
    assert rows_before_retraining(40_000, 1_000, 5_000) == 5_000, "then at most every 5,000"
    assert rows_before_retraining(200, 1_000, 5_000) == 1_000, "never before min_training_rows"


def test_without_doubling_only_the_count_counts() -> None:
    assert rows_before_retraining(1_000, 1_000, 5_000, as_data_doubles=False) == 5_000
    assert rows_before_retraining(40_000, 1_000, 5_000, as_data_doubles=False) == 5_000


@pytest.mark.parametrize("train_fraction", [0.2, 0.5, 0.8])
def test_the_pipeline_evaluation_scores_its_held_out_rows_with_one_model(
    tmp_path: Path, train_fraction: float
) -> None:
    """`eval anomalies --pipeline` trains once its training rows are scored, then measures the
    rest. A second model due on the held-out rows would re-score them as it starts serving: with
    half of them held out or more, retraining as the data doubles made one due."""
    rows = 4_000
    train_rows = int(rows * train_fraction)
    scorer = eval_settings(tmp_path, train_rows).scorer
    assert scorer.min_training_rows == train_rows
    trained_on = int(train_rows * 0.8)  # the first 80% fit, the rest calibrates
    due_after = rows_before_retraining(
        trained_on,
        scorer.min_training_rows,
        scorer.retrain_after_transactions,
        as_data_doubles=scorer.retrain_as_data_doubles,
    )
    assert due_after > rows - train_rows
    assert scorer.retrain_interval_s >= 24 * 3600


def test_the_first_model_waits_for_half_its_rows_from_accounts_with_a_history() -> None:
    assert not first_model_due(999, 999, 1_000), "never before min_training_rows"
    assert not first_model_due(3_000, 499, 1_000), "a fresh card stream's first days"
    assert first_model_due(3_000, 500, 1_000)
    young, mature = ([0.0] * len(FEATURE_NAMES) for _ in range(2))
    history = FEATURE_NAMES.index("log_history_size")
    young[history] = float(np.float32(math.log1p(FIRST_MODEL_HISTORY - 1)))
    mature[history] = float(np.float32(math.log1p(FIRST_MODEL_HISTORY)))  # as stored: float4
    assert not is_mature(young) and is_mature(mature)
