"""``spendstream eval``: how well the analytics do on any labelled file."""

from __future__ import annotations

import io
import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import orjson
import pandas as pd
import typer
from rich import box
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from services.analytics.semantic import LabelNames

eval_app = typer.Typer(help="Evaluate the analytics on labelled data.", no_args_is_help=True)
console = Console()
status = Console(stderr=True)


def read_csv(path: Path) -> pd.DataFrame:
    """The file's table, its fields split by the delimiter its header is split by (a comma, or
    a semicolon as most of Europe writes CSV), its text in the encoding it was written in."""
    from services.ingest.encoding import decode_export
    from services.ingest.imports import header_delimiter

    if not path.exists():
        fail(f"no such file: {path}")
    text = decode_export(path.read_bytes())
    delimiter = header_delimiter(text[: 64 * 1024].splitlines()[:1])
    return pd.read_csv(io.StringIO(text), low_memory=False, sep=delimiter)


def fail(message: str) -> NoReturn:
    status.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def _fmt(value: float, digits: int = 4) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


# The columns of a labelled stream, as `import` names a file's columns.
IdColumn = Annotated[str, typer.Option(help="--stream: transaction id column.")]
AccountColumn = Annotated[str, typer.Option(help="--stream: account column.")]
TimestampColumn = Annotated[str, typer.Option(help="--stream: timestamp column.")]
AmountColumn = Annotated[
    str, typer.Option(help="--stream: amount column (the more common sign is money out).")
]
MerchantColumn = Annotated[str, typer.Option(help="--stream: merchant column.")]
ChannelColumn = Annotated[str, typer.Option(help="--stream: channel column.")]
UserColumn = Annotated[
    str | None, typer.Option(help="--stream: user column (default: one user owns all).")
]
TypeColumn = Annotated[
    str | None,
    typer.Option(help="--stream: debit/credit column (default: one named 'type' or the like)."),
]


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
    stream: Annotated[
        Path | None,
        typer.Option(help="A labelled transaction CSV to post through a fresh local pipeline."),
    ] = None,
    feedback_delay_days: Annotated[
        float | None,
        typer.Option(min=0, help="With --stream: confirm each fraud this many days after it."),
    ] = None,
    id_column: IdColumn = "transaction_id",
    account_column: AccountColumn = "account_id",
    timestamp_column: TimestampColumn = "timestamp",
    amount_column: AmountColumn = "amount",
    merchant_column: MerchantColumn = "merchant",
    channel_column: ChannelColumn = "channel",
    user_column: UserColumn = None,
    type_column: TypeColumn = None,
) -> None:
    """Train every detector on the first part of the file, score the rest, compare with labels.

    Transaction tables (account_id, timestamp, amount, ...) get Spendstream's own features;
    any other table uses its numeric columns. With --pipeline, the demo generator's labelled
    anomalies go through the real services instead, and the stored scores are compared. With
    --stream FILE, a labelled stream goes through a fresh pipeline in event-time order, beside
    two baselines (see ``services/devstack/stream_eval.py``).
    """
    if pipeline:
        _eval_pipeline(users, months, seed, train_fraction, as_json)
    elif stream is not None:
        from services.devstack.stream_eval import StreamColumns

        columns = StreamColumns(
            transaction_id=id_column,
            account=account_column,
            timestamp=timestamp_column,
            amount=amount_column,
            merchant=merchant_column,
            channel=channel_column,
            label=label,
            user=user_column,
            kind=type_column,
        )
        _eval_stream(stream, columns, feedback_delay_days, as_json)
    elif csv is None:
        status.print("[bold red]error:[/] give --csv FILE --label COLUMN, --stream or --pipeline")
        raise typer.Exit(2)
    else:
        _eval_csv(csv, label, time, drop or [], train_fraction, seed, as_json)


def _eval_csv(
    csv: Path,
    label: str,
    time: str | None,
    drop: list[str],
    train_fraction: float,
    seed: int,
    as_json: bool,
) -> None:
    from services.scorer.evaluation import evaluate
    from services.scorer.tabular import load_labelled_table

    with status.status("reading and preparing features..."):
        try:
            table = load_labelled_table(read_csv(csv), label=label, time=time, drop=drop)
        except ValueError as exc:
            fail(str(exc))
    split = int(len(table.X) * train_fraction)
    with status.status(f"training on {split:,} rows and scoring {len(table.X) - split:,}..."):
        result = evaluate(
            table.X[:split],
            table.X[split:],
            table.y[split:],
            seed=seed,
            feature_names=table.feature_names,
        )
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


def _eval_stream(
    path: Path, columns: Any, feedback_delay_days: float | None, as_json: bool
) -> None:
    from rich.markup import escape
    from rich.progress import Progress

    from services.demo.loader import IngestError
    from services.devstack.stream_eval import evaluate_stream, read_stream

    try:
        labelled = read_stream(read_csv(path), columns)
    except ValueError as exc:
        fail(str(exc))
    status.print(f"reading {escape(_column_roles(labelled.columns))}")
    if labelled.moved_back:
        status.print(
            f"the stream ends after today: its times are moved back {labelled.moved_back.days} "
            "days (whole weeks, so weekdays and hours stay), as ingest takes none ahead of now"
        )
    with Progress(console=status, transient=True) as progress:
        task = progress.add_task(
            "posting day by day, reading live scores", total=len(labelled.records)
        )
        try:
            result = evaluate_stream(
                labelled,
                feedback_delay_days=feedback_delay_days,
                on_progress=lambda n: progress.advance(task, n),
            )
        except IngestError as exc:
            fail(f"ingest refused part of the stream, so it was not measured: {escape(str(exc))}")
    if as_json:
        print(orjson.dumps(result.as_dict(), option=orjson.OPT_SERIALIZE_NUMPY).decode())
        return
    _print_stream_quality(path, result)


def _column_roles(columns: Any) -> str:
    """Which column says what, as the stream eval found them: "id TRANSACTION_ID, ..."."""
    from services.devstack.stream_eval import ROW_NUMBER

    roles = [
        ("id", "row numbers" if columns.transaction_id == ROW_NUMBER else columns.transaction_id),
        ("account", columns.account),
        ("time", columns.timestamp),
        ("amount", columns.amount),
        ("merchant", columns.merchant),
        ("channel", columns.channel),
        ("label", columns.label),
        ("user", columns.user),
        ("debit/credit", columns.kind),
    ]
    return ", ".join(f"{role} {column}" for role, column in roles if column is not None)


def _print_stream_quality(path: Path, result: Any) -> None:
    feedback = (
        f"fraud confirmed {result.feedback_delay_days:g} days late"
        if result.feedback_delay_days is not None
        else "no feedback"
    )
    grid = Table(
        "scores",
        "ROC",
        "PR",
        "ROC 30d",
        "PR 30d",
        "precision",
        "recall",
        "alerts",
        title=f"{path.name}: {result.rows:,} transactions, {result.frauds:,} fraud, {feedback}; "
        f"precision, recall and alerts at the threshold {result.threshold}",
    )
    for name, shown in (("spendstream", "model"), ("amount", "amount"), ("account_z", "account z")):
        overall, last = result.overall[name], result.last_days[name]
        grid.add_row(
            shown,
            *(_fmt(v, 3) for v in (overall["roc_auc"], overall["pr_auc"])),
            *(_fmt(v, 3) for v in (last["roc_auc"], last["pr_auc"])),
            *(
                _fmt(overall[k], 3) if k in overall else ""
                for k in ("precision", "recall", "alert_rate")
            ),
        )
    console.print(grid)
    # Ten columns in an 80-column terminal: short headers, no rules between the columns.
    weeks = Table(
        "week of",
        "rows",
        "fraud",
        "ROC",
        "PR",
        "prec.",
        "recall",
        "alerts",
        "z ROC",
        "z PR",
        title="per week (live scores; z: the per-account z)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for week in result.weekly:
        s, z = week["spendstream"], week["account_z"]
        weeks.add_row(
            week["week"],
            f"{week['rows']:,}",
            f"{week['frauds']:,}",
            *(_fmt(s[k], 3) for k in ("roc_auc", "pr_auc", "precision", "recall", "alert_rate")),
            _fmt(z["roc_auc"], 3),
            _fmt(z["pr_auc"], 3),
        )
    console.print(weeks)
    stored = result.stored
    console.print(
        f"Live scores are each transaction's score when it arrived. The scores stored at the end, "
        f"after re-scoring by later models that trained on these rows, give ROC-AUC "
        f"{_fmt(stored['roc_auc'])}, PR-AUC {_fmt(stored['pr_auc'])}. Models: "
        + ", ".join(result.models)
    )


def _eval_pipeline(
    users: int, months: int, seed: int, train_fraction: float, as_json: bool
) -> None:
    from services.devstack.pipeline_eval import evaluate_through_pipeline

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


# The labelled merchant set `eval clusters` judges on unless told otherwise: OpenStreetMap's
# name-suggestion-index brands as card descriptors (bench/merchant_sets.py writes it), because a
# set nobody here wrote says more than the demo generator's merchants, written beside the models.
THIRD_PARTY_MERCHANTS = Path(__file__).parent.parent / "devstack" / "data" / "nsi_merchants.csv"
THIRD_PARTY_COLUMNS = ("descriptor", "label")
CSV_COLUMNS = ("merchant", "category")  # what --text and --label default to


@eval_app.command("clusters")
def eval_clusters(
    csv: Annotated[
        Path | None,
        typer.Option(
            help="CSV of texts with known labels (default: 1,220 brands from 89 countries, "
            "OpenStreetMap's name-suggestion-index, as card descriptors)."
        ),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Judge on the demo generator's merchants instead.")
    ] = False,
    text: Annotated[
        str | None, typer.Option(help="Text column of --csv (default: merchant).")
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="Label column of --csv (default: category).")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Cosine distance threshold (default: by silhouette).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Cluster the texts and score the clusters and kNN categorization against known labels;
    KMeans with k chosen by silhouette is the baseline. kNN categorization is also scored as
    the scorer applies it: only at or above SPENDSTREAM_CATEGORIZE_MIN_CONFIDENCE."""
    import asyncio

    from services.analytics.embeddings import Embedder
    from services.analytics.semantic import LabelNames, label_text
    from services.core.settings import Settings

    source, texts, labels = _labelled_set(csv, demo, text, label)
    with status.status(f"embedding {len(texts)} distinct texts..."):
        embedder = Embedder(None)
        embeddings = asyncio.run(embedder.embed(texts))
        known = tuple(sorted(set(labels)))
        names = LabelNames(known, asyncio.run(embedder.embed([label_text(k) for k in known])))
    with status.status("clustering..."):
        result = _cluster_report(
            texts, labels, embeddings, names, threshold, Settings().categories.min_confidence
        )
    result = {"set": source, **result}
    if as_json:
        print(orjson.dumps(result).decode())
        return
    _print_cluster_report(result)


def _labelled_set(
    csv: Path | None, demo: bool, text: str | None, label: str | None
) -> tuple[str, list[str], list[str]]:
    """What the set is called, its distinct texts and their labels."""
    if demo and csv is not None:
        fail("give --csv or --demo, not both")
    if csv is None and not demo:
        if text is not None or label is not None:
            fail("--text and --label name columns of --csv; give the file too")
        return (
            "name-suggestion-index brands as card descriptors",
            *_labelled_texts(THIRD_PARTY_MERCHANTS, *THIRD_PARTY_COLUMNS),
        )
    if demo:
        return "the demo merchants", *_labelled_texts(None, *CSV_COLUMNS)
    return str(csv), *_labelled_texts(csv, text or CSV_COLUMNS[0], label or CSV_COLUMNS[1])


def _labelled_texts(csv: Path | None, text: str, label: str) -> tuple[list[str], list[str]]:
    """One point per distinct normalized text, labelled by its most common label."""
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
    votes: dict[str, Counter[str]] = {}
    for raw, known in pairs:
        key = normalize_text(raw)
        if key:
            votes.setdefault(key, Counter())[known] += 1
    texts = sorted(votes)
    if len(texts) < 3:
        fail("need at least 3 distinct texts")
    return texts, [votes[t].most_common(1)[0][0] for t in texts]


PRECISION_TARGET = 0.85


def _cluster_report(
    texts: list[str],
    labels: list[str],
    embeddings: Any,
    names: LabelNames,
    threshold: float | None,
    min_confidence: float,
) -> dict[str, Any]:
    from dataclasses import asdict

    from services.analytics.semantic import (
        TextSpace,
        Vote,
        applied_accuracy,
        choose_vote,
        cluster,
        cluster_scores,
        kmeans_by_silhouette,
        leave_one_out,
        leave_one_out_accuracy,
        threshold_for_precision,
    )

    space = TextSpace(texts, embeddings)
    clusters, assignment, chosen = cluster(space, threshold)
    baseline = kmeans_by_silhouette(embeddings)
    vote = choose_vote(space, labels, names)
    predictions = leave_one_out(space, labels, vote)
    neighbours_only = Vote(vote.k, vote.temperature)
    n_labels = len(set(labels))
    tuned = threshold_for_precision(predictions, labels, PRECISION_TARGET)
    return {
        "n_texts": len(texts),
        "n_labels": n_labels,
        "n_clusters": len(clusters),
        "clusters_per_label": len(clusters) / n_labels,
        **cluster_scores(labels, assignment),
        "knn_accuracy": float(
            sum(p.label == y for p, y in zip(predictions, labels, strict=True)) / len(labels)
        ),
        "knn_applied": asdict(applied_accuracy(predictions, labels, min_confidence)),
        "knn_threshold_for_precision": {
            "target": PRECISION_TARGET,
            "threshold": tuned,
            **(asdict(applied_accuracy(predictions, labels, tuned)) if tuned is not None else {}),
        },
        "threshold": chosen,
        "kmeans": {"n_clusters": len(set(baseline)), **cluster_scores(labels, baseline)},
        "knn_neighbours": vote.k,
        "knn_temperature": vote.temperature,
        "knn_label_name_weight": vote.name_weight,
        "knn_accuracy_neighbours_only": leave_one_out_accuracy(space, labels, neighbours_only),
        "knn_accuracy_embedding_only": leave_one_out_accuracy(
            TextSpace(texts, embeddings).embedding_only(), labels, neighbours_only
        ),
    }


def _print_cluster_report(result: dict[str, Any]) -> None:
    grid = Table(
        "method",
        "clusters",
        "per label",
        "NMI",
        "ARI",
        "purity",
        title=f"{result['set']}: {result['n_texts']} distinct texts, {result['n_labels']} labels",
    )
    for name, scores in (
        (f"agglomerative, cosine, threshold {result['threshold']:.2f}", result),
        ("KMeans, k by silhouette", result["kmeans"]),
    ):
        grid.add_row(
            name,
            str(scores["n_clusters"]),
            f"{scores['n_clusters'] / result['n_labels']:.2f}",
            _fmt(scores["nmi"]),
            _fmt(scores["ari"]),
            _fmt(scores["purity"]),
        )
    console.print(grid)
    applied, tuned = result["knn_applied"], result["knn_threshold_for_precision"]
    console.print(
        f"kNN categorization, leave-one-out: top-1 {result['knn_accuracy']:.3f} by the "
        f"{result['knn_neighbours']} nearest at temperature {result['knn_temperature']:g}, with "
        f"the labels' names at weight {result['knn_label_name_weight']:.2f} (neighbours alone: "
        f"{result['knn_accuracy_neighbours_only']:.3f}; embeddings alone: "
        f"{result['knn_accuracy_embedding_only']:.3f}); as applied, at "
        f"confidence >= {applied['threshold']:.2f}: precision {_fmt(applied['precision'])}, "
        f"coverage {applied['coverage']:.3f}, right overall {applied['top1']:.3f}"
    )
    if tuned["threshold"] is None:
        console.print(f"no confidence threshold reaches precision {tuned['target']}")
    else:
        console.print(
            f"for precision >= {tuned['target']}: confidence >= {tuned['threshold']:.2f} "
            f"applies to {tuned['coverage']:.3f} of texts, right overall {tuned['top1']:.3f}"
        )
