"""``spendstream eval``: how well the analytics do on any labelled file."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, NoReturn

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
        fail(f"no such file: {path}")
    return pd.read_csv(path, low_memory=False)


def fail(message: str) -> NoReturn:
    status.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def _fmt(value: float) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.4f}"
    )


@eval_app.command("anomalies")
def eval_anomalies(
    csv: Annotated[Path | None, typer.Option(help="Labelled CSV file.")] = None,
    label: Annotated[
        str, typer.Option(help="Column with the anomaly label (1/0, true/false).")
    ] = "is_anomaly",
    time: Annotated[
        str | None, typer.Option(help="Order rows by this column (else file order).")
    ] = None,
    drop: Annotated[list[str] | None, typer.Option(help="Columns that are not features.")] = None,
    train_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.95, help="Share used to train.")
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of every detector.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    pipeline: Annotated[
        bool,
        typer.Option(
            "--pipeline",
            help="Instead of a file: stream demo data through a local ingest, Kafka and scorer.",
        ),
    ] = False,
    users: Annotated[int, typer.Option(min=1, help="Demo users, with --pipeline.")] = 20,
    months: Annotated[int, typer.Option(min=2, help="Demo months, with --pipeline.")] = 12,
) -> None:
    """Train every detector on the first part of the file, score the rest, compare with labels.

    Transaction tables (account_id, timestamp, amount, ...) get Spendstream's own features;
    any other table uses its numeric columns. With --pipeline, the demo generator's labelled
    anomalies go through the real services instead, and the stored scores are compared.
    """
    from services.scorer.evaluation import evaluate
    from services.scorer.tabular import load_labelled_table

    if pipeline:
        _eval_pipeline(users, months, seed, train_fraction, as_json)
        return
    if csv is None:
        status.print("[bold red]error:[/] give --csv FILE --label COLUMN, or --pipeline")
        raise typer.Exit(2)

    with status.status("reading and preparing features..."):
        try:
            table = load_labelled_table(read_csv(csv), label=label, time=time, drop=drop or [])
        except ValueError as exc:
            fail(str(exc))
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


def _eval_pipeline(
    users: int, months: int, seed: int, train_fraction: float, as_json: bool
) -> None:
    from services.cli.pipeline_eval import evaluate_through_pipeline

    with status.status("streaming demo data through ingest, Kafka and the scorer..."):
        quality = evaluate_through_pipeline(
            users=users, months=months, seed=seed, train_fraction=train_fraction
        )
    if as_json:
        print(orjson.dumps(quality.as_dict()).decode())
        return
    grid = Table("metric", "value", title=f"through the pipeline: model {quality.model_version}")
    for name, value in quality.metrics.items():
        grid.add_row(name, _fmt(value))
    grid.add_row(f"precision at {quality.threshold}", _fmt(quality.precision_at_threshold))
    grid.add_row(f"recall at {quality.threshold}", _fmt(quality.recall_at_threshold))
    for threshold, (precision, recall) in quality.precision_recall_at.items():
        grid.add_row(f"  precision / recall at {threshold}", f"{precision:.3f} / {recall:.3f}")
    grid.add_row("streamed to train / scored", f"{quality.n_train:,} / {quality.n_test:,}")
    grid.add_row("labelled anomalies scored", f"{quality.anomalies_in_test:,}")
    console.print(grid)


@eval_app.command("forecast")
def eval_forecast(
    csv: Annotated[Path, typer.Option(help="CSV with one series.")],
    date: Annotated[str, typer.Option("--date", help="Date column.")],
    value: Annotated[str, typer.Option("--value", help="Value column.")],
    season: Annotated[
        int | None, typer.Option(help="Season length (default: 7 daily, 12 monthly).")
    ] = None,
    horizon: Annotated[
        int | None, typer.Option(help="Periods ahead (default: 30 daily, 12 monthly).")
    ] = None,
    folds: Annotated[int, typer.Option(min=1, max=20, help="Rolling origins.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Rolling-origin backtest of the forecaster on any single series, next to seasonal naive
    and "same as last period".

    Daily or monthly spacing is inferred from the dates."""
    from services.forecaster.forecasting import ForecastConfig, Panel, backtest

    frame = read_csv(csv)
    missing = [c for c in (date, value) if c not in frame.columns]
    if missing:
        fail(f"no column(s) {', '.join(missing)}; the file has {', '.join(frame.columns)}")
    dates = pd.to_datetime(frame[date], errors="coerce")
    if dates.isna().any():
        fail(f"--date {date}: {int(dates.isna().sum())} values are not dates")
    monthly = dates.sort_values().diff().median() >= pd.Timedelta(days=27)
    config = (
        ForecastConfig.monthly(season or 12, horizon or 12)
        if monthly
        else ForecastConfig(season=season or 7, horizon=horizon or 30)
    )
    series = pd.DataFrame({"series": "series", "day": dates, "value": frame[value].astype(float)})
    panel = Panel.from_long(series, ["series"], "day", "value", freq="MS" if monthly else "D")
    with status.status(f"backtesting {folds} folds of {config.horizon} periods..."):
        try:
            result = backtest(panel, config, n_folds=folds)
        except ValueError as exc:
            fail(str(exc))
    if as_json:
        print(orjson.dumps(result.as_dict()).decode())
        return
    grid = Table(
        "",
        "MASE",
        "sMAPE",
        "80% coverage",
        title=f"{csv.name}: {result.n_folds} folds, horizon {result.horizon}, "
        f"season {config.season}",
    )
    grid.add_row(
        "XGBoost",
        _fmt(result.model["mase"]),
        _fmt(result.model["smape"]),
        _fmt(result.model["coverage_80"]),
    )
    grid.add_row(
        "seasonal naive",
        _fmt(result.seasonal_naive["mase"]),
        _fmt(result.seasonal_naive["smape"]),
        "",
    )
    grid.add_row(
        "same as last period",
        _fmt(result.last_value["mase"]),
        _fmt(result.last_value["smape"]),
        "",
    )
    console.print(grid)
    console.print(
        "80% intervals are conformal: each fold's comes from the errors of forecasts made "
        "before it, never from its own outcomes."
    )


@eval_app.command("clusters")
def eval_clusters(
    csv: Annotated[
        Path | None,
        typer.Option(help="CSV of texts with known labels (default: the demo merchants)."),
    ] = None,
    text: Annotated[str, typer.Option(help="Text column.")] = "merchant",
    label: Annotated[str, typer.Option(help="Label column.")] = "category",
    threshold: Annotated[
        float | None, typer.Option(help="Cosine distance threshold (default: by silhouette).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Cluster the texts and score the clusters and kNN categorization against known labels;
    KMeans with k chosen by silhouette is the baseline."""
    import asyncio

    from services.core.embeddings import Embedder
    from services.core.semantic import (
        TextSpace,
        cluster,
        cluster_scores,
        kmeans_by_silhouette,
        leave_one_out_accuracy,
    )
    from services.core.text import normalize_text

    if csv is None:
        from services.demo.merchants import catalogue

        pairs = [(raw, merchant.category) for merchant in catalogue() for raw in merchant.raw]
    else:
        frame = read_csv(csv)
        missing = [c for c in (text, label) if c not in frame.columns]
        if missing:
            fail(f"no column(s) {', '.join(missing)}; the file has {', '.join(frame.columns)}")
        frame = frame.dropna(subset=[text, label])
        pairs = list(zip(frame[text].astype(str), frame[label].astype(str), strict=True))
    # One point per distinct normalized text, labelled by its most common label.
    votes: dict[str, Counter[str]] = {}
    for raw, known in pairs:
        key = normalize_text(raw)
        if key:
            votes.setdefault(key, Counter())[known] += 1
    texts = sorted(votes)
    labels = [votes[t].most_common(1)[0][0] for t in texts]
    if len(texts) < 3:
        fail("need at least 3 distinct texts")
    with status.status(f"embedding {len(texts)} distinct texts..."):
        embeddings = asyncio.run(Embedder(None).embed(texts))
    space = TextSpace(texts, embeddings)
    with status.status("clustering..."):
        clusters, assignment, chosen = cluster(space, threshold)
        baseline = kmeans_by_silhouette(embeddings)
    result: dict[str, Any] = {
        "n_texts": len(texts),
        "n_clusters": len(clusters),
        **cluster_scores(labels, assignment),
        "knn_accuracy": leave_one_out_accuracy(space, labels),
        "threshold": chosen,
        "kmeans": {"n_clusters": len(set(baseline)), **cluster_scores(labels, baseline)},
        "knn_accuracy_embedding_only": leave_one_out_accuracy(
            TextSpace(texts, embeddings).embedding_only(), labels
        ),
    }
    if as_json:
        print(orjson.dumps(result).decode())
        return
    grid = Table("method", "clusters", "NMI", "ARI", "purity", title=f"{len(texts)} distinct texts")
    grid.add_row(
        f"agglomerative, cosine, threshold {chosen:.2f}",
        str(result["n_clusters"]),
        _fmt(result["nmi"]),
        _fmt(result["ari"]),
        _fmt(result["purity"]),
    )
    k = result["kmeans"]
    grid.add_row(
        "KMeans, k by silhouette",
        str(k["n_clusters"]),
        _fmt(k["nmi"]),
        _fmt(k["ari"]),
        _fmt(k["purity"]),
    )
    console.print(grid)
    console.print(
        f"kNN categorization accuracy (leave-one-out): {result['knn_accuracy']:.3f} "
        f"(embeddings alone: {result['knn_accuracy_embedding_only']:.3f})"
    )
