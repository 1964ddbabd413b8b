"""``spendstream eval``: how well the analytics do on any labelled file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import orjson
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

eval_app = typer.Typer(help="Evaluate the analytics on labelled data.", no_args_is_help=True)
console = Console()
status = Console(stderr=True)


def read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        status.print(f"[bold red]error:[/] no such file: {path}")
        raise typer.Exit(1)
    return pd.read_csv(path, low_memory=False)


def _fmt(value: float) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.4f}"
    )


@eval_app.command("anomalies")
def eval_anomalies(
    csv: Annotated[Path, typer.Option(help="Labelled CSV file.")],
    label: Annotated[str, typer.Option(help="Column with the anomaly label (1/0, true/false).")],
    time: Annotated[
        str | None, typer.Option(help="Order rows by this column (else file order).")
    ] = None,
    drop: Annotated[list[str] | None, typer.Option(help="Columns that are not features.")] = None,
    train_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.95, help="Share used to train.")
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of every detector.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Train every detector on the first part of the file, score the rest, compare with labels.

    Transaction tables (account_id, timestamp, amount, ...) get Spendstream's own features;
    any other table uses its numeric columns.
    """
    from services.scorer.evaluation import evaluate
    from services.scorer.tabular import load_labelled_table

    with status.status("reading and preparing features..."):
        try:
            table = load_labelled_table(read_csv(csv), label=label, time=time, drop=drop or [])
        except ValueError as exc:
            status.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(1) from None
    split = int(len(table.X) * train_fraction)
    with status.status(f"training on {split:,} rows and scoring {len(table.X) - split:,}..."):
        result = evaluate(table.X[:split], table.X[split:], table.y[split:], seed=seed)
    if as_json:
        print(orjson.dumps(result.as_dict()).decode())
        return
    grid = Table(
        "detector",
        "ROC-AUC",
        "PR-AUC",
        "precision@k",
        "fit s",
        "score s",
        title=f"{csv.name}: train {result.n_train:,}, test {result.n_test:,} "
        f"({int(table.y[split:].sum()):,} anomalies), "
        + (
            "Spendstream features"
            if table.derived
            else f"{len(table.feature_names)} numeric columns"
        ),
    )
    for name, m in result.detectors.items():
        grid.add_row(
            name,
            _fmt(m["roc_auc"]),
            _fmt(m["pr_auc"]),
            _fmt(m["precision_at_k"]),
            f"{m['fit_s']:.1f}",
            f"{m['score_s']:.1f}",
        )
    console.print(grid)
    weights = ", ".join(f"{k} {v:.2f}" for k, v in result.weights.items())
    console.print(f"ensemble weights (agreement with the others, no labels used): {weights}")
