"""Every chart, defined once as Vega-Lite (through altair): the dashboard renders the JSON spec
interactively, and the API renders the same spec to PNG or SVG with vl-convert."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import orjson
import pandas as pd

CHARTS = ("trend", "heatmap", "anomalies", "categories", "drift", "forecast")
WIDTH, HEIGHT = 640, 260

alt.data_transformers.disable_max_rows()


def _frame(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(columns))


def _finish(chart: alt.TopLevelMixin, title: str) -> dict[str, Any]:
    # Through JSON once, so dates and decimals in the data become plain values vl-convert reads.
    spec: dict[str, Any] = orjson.loads(
        orjson.dumps(chart.properties(title=title).to_dict(), default=str)
    )
    return spec


def trend(weekly: Sequence[dict[str, Any]], forecast: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Weekly spend per category, and the forecast of the total with its p10-p90 band."""
    spent = _frame(weekly, ["week", "category", "total"])
    ahead = _frame(forecast, ["week", "p10", "p50", "p90"])
    lines = (
        alt.Chart(spent)
        .mark_line(point=True)
        .encode(
            x=alt.X("week:T", title="week"),
            y=alt.Y("total:Q", title="spent"),
            color=alt.Color("category:N", legend=alt.Legend(orient="right")),
            tooltip=["week:T", "category:N", alt.Tooltip("total:Q", format=",.2f")],
        )
    )
    band = (
        alt.Chart(ahead)
        .mark_area(opacity=0.25, color="#4c78a8")
        .encode(
            x="week:T",
            y="p10:Q",
            y2="p90:Q",
            tooltip=[
                "week:T",
                alt.Tooltip("p10:Q", format=",.0f"),
                alt.Tooltip("p90:Q", format=",.0f"),
            ],
        )
    )
    median = (
        alt.Chart(ahead)
        .mark_line(strokeDash=[4, 3], color="#4c78a8")
        .encode(
            x="week:T",
            y=alt.Y("p50:Q", title="spent"),
            tooltip=["week:T", alt.Tooltip("p50:Q", format=",.0f")],
        )
    )
    return _finish(
        alt.layer(band, median, lines).properties(width=WIDTH, height=HEIGHT),
        "Spending per week, with the forecast of the total (p10-p90)",
    )


def heatmap(weekly: Sequence[dict[str, Any]]) -> dict[str, Any]:
    spent = _frame(weekly, ["week", "category", "total"])
    chart = (
        alt.Chart(spent)
        .mark_rect()
        .encode(
            x=alt.X("yearmonthdate(week):O", title="week starting"),
            y=alt.Y("category:N", title=None),
            color=alt.Color("total:Q", scale=alt.Scale(scheme="blues"), title="spent"),
            tooltip=["week:T", "category:N", alt.Tooltip("total:Q", format=",.2f")],
        )
    )
    return _finish(chart.properties(width=WIDTH, height=HEIGHT), "Category by week")


def anomalies(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    frame = _frame(
        points, ["timestamp", "amount", "score", "merchant", "category", "reason", "transaction_id"]
    )
    chart = (
        alt.Chart(frame)
        .mark_circle(opacity=0.8)
        .encode(
            x=alt.X("timestamp:T", title="time"),
            y=alt.Y("amount:Q", scale=alt.Scale(type="log"), title="amount"),
            color=alt.Color(
                "score:Q", scale=alt.Scale(scheme="orangered", domain=[0, 1]), title="score"
            ),
            size=alt.condition("datum.score >= 0.9", alt.value(90), alt.value(20)),
            tooltip=[
                "timestamp:T",
                "merchant:N",
                "category:N",
                alt.Tooltip("amount:Q", format=",.2f"),
                alt.Tooltip("score:Q", format=".3f"),
                "reason:N",
            ],
        )
    )
    return _finish(
        chart.properties(width=WIDTH, height=HEIGHT).interactive(),
        "Transactions by time and amount, coloured by anomaly score",
    )


def categories(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    frame = _frame(points, ["x", "y", "text", "cluster"])
    chart = (
        alt.Chart(frame)
        .mark_circle(size=70)
        .encode(
            x=alt.X("x:Q", axis=None),
            y=alt.Y("y:Q", axis=None),
            color=alt.Color("cluster:N", legend=alt.Legend(orient="right", title="cluster")),
            tooltip=["text:N", "cluster:N"],
        )
    )
    labels = chart.mark_text(dy=-9, fontSize=9).encode(text="text:N")
    return _finish(
        alt.layer(chart, labels).properties(width=WIDTH, height=HEIGHT),
        "Merchants and categories by meaning (2-D projection)",
    )


def drift(points: Sequence[dict[str, Any]], threshold: float) -> dict[str, Any]:
    frame = _frame(points, ["window_end", "account_id", "metric", "value"])
    lines = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("window_end:T", title="window end"),
            y=alt.Y("value:Q", title="Jensen-Shannon divergence", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("metric:N"),
            strokeDash=alt.StrokeDash("account_id:N"),
            tooltip=[
                "window_end:T",
                "account_id:N",
                "metric:N",
                alt.Tooltip("value:Q", format=".3f"),
            ],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"threshold": [threshold]}))
        .mark_rule(color="#d62728", strokeDash=[6, 4])
        .encode(y="threshold:Q")
    )
    return _finish(
        alt.layer(lines, rule).properties(width=WIDTH, height=HEIGHT),
        f"Drift of spending (threshold {threshold:g})",
    )


def forecast(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    frame = _frame(points, ["day", "category", "p10", "p50", "p90"])
    base = alt.Chart(frame).encode(x=alt.X("day:T", title="day"), color=alt.Color("category:N"))
    band = base.mark_area(opacity=0.2).encode(y=alt.Y("p10:Q", title="spend"), y2="p90:Q")
    line = base.mark_line().encode(
        y="p50:Q",
        tooltip=[
            "day:T",
            "category:N",
            alt.Tooltip("p10:Q", format=",.2f"),
            alt.Tooltip("p50:Q", format=",.2f"),
            alt.Tooltip("p90:Q", format=",.2f"),
        ],
    )
    return _finish(
        alt.layer(band, line).properties(width=WIDTH, height=HEIGHT),
        "Forecast per category: median and 80% interval",
    )
