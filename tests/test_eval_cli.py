"""`spendstream eval anomalies` on data nobody here wrote, and on the demo generator's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pandas as pd
import pytest
from river import datasets

SPENDSTREAM = [sys.executable, "-m", "services.cli.main"]
DETECTORS = {"lof", "ocsvm", "autoencoder", "profile", "hst", "ensemble"}


def run_json(*args: str) -> dict:
    done = subprocess.run(
        [*SPENDSTREAM, *args, "--json"], capture_output=True, text=True, check=True
    )
    return orjson.loads(done.stdout)  # exactly one JSON object on stdout


@pytest.mark.slow
def test_river_shuttle_ensemble_roc_auc(tmp_path: Path) -> None:
    shuttle = pd.read_csv(datasets.Shuttle().path)
    path = tmp_path / "shuttle.csv"
    shuttle.to_csv(path, index=False)
    result = run_json("eval", "anomalies", "--csv", str(path), "--label", "anomaly")
    assert set(result) >= {"n_train", "n_test", "detectors"}
    assert set(result["detectors"]) == DETECTORS
    for metrics in result["detectors"].values():
        assert set(metrics) >= {"roc_auc", "pr_auc", "precision_at_k", "fit_s", "score_s"}
    assert result["n_train"] + result["n_test"] == len(shuttle)
    assert result["detectors"]["ensemble"]["roc_auc"] >= 0.98


@pytest.mark.slow
def test_demo_anomalies_with_spendstream_features(tmp_path: Path) -> None:
    path = tmp_path / "demo.csv"
    subprocess.run(
        [
            *SPENDSTREAM,
            "demo",
            "--users",
            "12",
            "--months",
            "8",
            "--seed",
            "2",
            "--end",
            "2026-09-01",
            "--out",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    result = run_json(
        "eval",
        "anomalies",
        "--csv",
        str(path),
        "--label",
        "is_anomaly",
        "--time",
        "timestamp",
        "--drop",
        "anomaly_kind",
    )
    # The profile anchors the ensemble since it beat the density detectors on third-party card
    # streams; on the demo's own planted combinations the old consensus ranked higher (0.976).
    assert result["detectors"]["ensemble"]["roc_auc"] >= 0.92
    assert result["detectors"]["ensemble"]["pr_auc"] >= 0.4


@pytest.mark.slow
def test_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,0\n2,1\n")
    done = subprocess.run(
        [*SPENDSTREAM, "eval", "anomalies", "--csv", str(path), "--label", "missing"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "missing" in done.stderr


@pytest.mark.slow
def test_a_labelled_stream_through_the_real_pipeline_beside_two_baselines(tmp_path: Path) -> None:
    """`eval anomalies --stream`: a card stream nobody here designed (the Fraud Detection
    Handbook's simulator), posted day by day through ingest, Kafka and the scorer, fraud
    confirmed through the API a week late; live scores read back and compared."""
    from bench.cardsim import simulate, write_csv

    path = tmp_path / "cards.csv"
    write_csv(simulate(customers=80, terminals=1500, days=24, seed=8), path)
    result = run_json("eval", "anomalies", "--stream", str(path), "--feedback-delay-days", "7")
    assert result["rows"] == len(pd.read_csv(path)) and result["frauds"] > 100
    assert set(result["overall"]) == {"spendstream", "amount", "account_z"}
    model, amount = result["overall"]["spendstream"], result["overall"]["amount"]
    assert model["roc_auc"] > amount["roc_auc"], result["overall"]
    assert 0 < model["alert_rate"] < 0.2 and model["precision"] > 0.5, model
    assert len(result["weekly"]) >= 4 and all(w["rows"] > 0 for w in result["weekly"])
    assert set(result["last_days"]["spendstream"]) >= {"roc_auc", "pr_auc"}
    columns = result["columns"]
    assert (columns["label"], columns["merchant"]) == ("is_anomaly", "merchant"), "as read"


@pytest.mark.slow
def test_a_stream_missing_a_column_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("transaction_id,account_id,timestamp,amount\n1,a,2026-01-01T10:00:00Z,5\n")
    done = subprocess.run(
        [*SPENDSTREAM, "eval", "anomalies", "--stream", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 1 and "is_anomaly" in done.stderr
