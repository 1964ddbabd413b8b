"""The benchmark's stack trains no model of its own: training takes a core from whatever
benchmark happens to be running when a count is reached."""

from pathlib import Path

import pytest

from bench.run import bench_settings
from services.scorer.ensemble import rows_before_retraining

# What one full `make bench` scores, with room: the drains alone score 280,000 transactions.
SCORED_IN_A_RUN = 1_000_000


@pytest.mark.parametrize("trained_on", [1_500, 50_000])
def test_no_model_falls_due_during_a_benchmark_run(tmp_path: Path, trained_on: int) -> None:
    """scorer_throughput registers a model trained on about 1,500 demo rows. A model is due once
    the data has doubled since then, unless min_training_rows says otherwise: before this test,
    the bench's own model was replaced in the middle of a drain."""
    scorer = bench_settings(tmp_path).scorer
    due_after = rows_before_retraining(
        trained_on, scorer.min_training_rows, scorer.retrain_after_transactions
    )
    assert due_after > SCORED_IN_A_RUN
    assert scorer.retrain_interval_s >= 24 * 3600
