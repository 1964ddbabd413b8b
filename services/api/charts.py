"""Every chart, defined once as Vega-Lite (through altair): the dashboard renders the JSON spec
interactively, and the API renders the same spec to PNG or SVG with vl-convert.

Each definition is built once and reads its rows from named datasets, filled per request: building
altair's encodings costs tens of milliseconds whatever the data, a large share of a warm PNG's
time budget (bench/results/history.json)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import altair as alt
import orjson

CHARTS = ("trend", "heatmap", "anomalies", "categories", "drift", "forecast", "budget")
WIDTH, HEIGHT = 640, 260

Rows = Sequence[dict[str, Any]]


def _data(name: str) -> alt.NamedData:
    return alt.NamedData(name=name)


def _definition(chart: alt.TopLevelMixin, title: str) -> dict[str, Any]:
    spec: dict[str, Any] = chart.properties(title=title).to_dict()
    return spec


def _filled(definition: dict[str, Any], **datasets: tuple[Rows, Sequence[str]]) -> dict[str, Any]:
    """The definition with each named dataset's rows, keeping only the columns it plots. Through
    JSON once, so dates and decimals become plain values vl-convert reads."""
    rows = {
        name: [{column: row.get(column) for column in columns} for row in values]
        for name, (values, columns) in datasets.items()
    }
    return {**definition, "datasets": orjson.loads(orjson.dumps(rows, default=str))}


def trend(weekly: Rows, forecast: Rows, currency: str = "USD") -> dict[str, Any]:
    """Weekly spend per category, and the forecast of the total with its p10-p90 band."""
    return _filled(
        _trend(currency),
        spent=(weekly, ("week", "category", "total")),
        ahead=(forecast, ("week", "p10", "p50", "p90")),
    )


@cache
def _trend(currency: str) -> dict[str, Any]:
    lines = (
        alt.Chart(_data("spent"))
        .mark_line(point=True)
        .encode(
            x=alt.X("week:T", title="week"),
            y=alt.Y("total:Q", title=f"spent ({currency})"),
            color=alt.Color("category:N", legend=alt.Legend(orient="right")),
            tooltip=["week:T", "category:N", alt.Tooltip("total:Q", format=",.2f")],
        )
    )
    band = (
        alt.Chart(_data("ahead"))
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
        alt.Chart(_data("ahead"))
        .mark_line(strokeDash=[4, 3], color="#4c78a8")
        .encode(
            x="week:T",
            y=alt.Y("p50:Q", title=f"spent ({currency})"),
            tooltip=["week:T", alt.Tooltip("p50:Q", format=",.0f")],
        )
    )
    return _definition(
        alt.layer(band, median, lines).properties(width=WIDTH, height=HEIGHT),
        "Spending per week, with the forecast of the total (p10-p90)",
    )


def heatmap(weekly: Rows) -> dict[str, Any]:
    return _filled(_heatmap(), spent=(weekly, ("week", "category", "total")))


@cache
def _heatmap() -> dict[str, Any]:
    chart = (
        alt.Chart(_data("spent"))
        .mark_rect()
        .encode(
            x=alt.X("yearmonthdate(week):O", title="week starting"),
            y=alt.Y("category:N", title=None),
            color=alt.Color("total:Q", scale=alt.Scale(scheme="blues"), title="spent"),
            tooltip=["week:T", "category:N", alt.Tooltip("total:Q", format=",.2f")],
        )
    )
    return _definition(chart.properties(width=WIDTH, height=HEIGHT), "Category by week")


def anomalies(points: Rows) -> dict[str, Any]:
    columns = ("timestamp", "amount", "score", "merchant", "category", "reason", "transaction_id")
    return _filled(_anomalies(), points=(points, columns))


@cache
def _anomalies() -> dict[str, Any]:
    chart = (
        alt.Chart(_data("points"))
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
    return _definition(
        chart.properties(width=WIDTH, height=HEIGHT).interactive(),
        "Transactions by time and amount, coloured by anomaly score",
    )


def categories(points: Rows) -> dict[str, Any]:
    return _filled(_categories(), points=(points, ("x", "y", "text", "cluster")))


@cache
def _categories() -> dict[str, Any]:
    chart = (
        alt.Chart(_data("points"))
        .mark_circle(size=70)
        .encode(
            x=alt.X("x:Q", axis=None),
            y=alt.Y("y:Q", axis=None),
            color=alt.Color("cluster:N", legend=alt.Legend(orient="right", title="cluster")),
            tooltip=["text:N", "cluster:N"],
        )
    )
    labels = chart.mark_text(dy=-9, fontSize=9).encode(text="text:N")
    return _definition(
        alt.layer(chart, labels).properties(width=WIDTH, height=HEIGHT),
        "Merchants and categories by meaning (2-D projection)",
    )


def drift(points: Rows, threshold: float) -> dict[str, Any]:
    return _filled(
        _drift(threshold),
        points=(points, ("window_end", "account_id", "metric", "value")),
        threshold=([{"threshold": threshold}], ("threshold",)),
    )


@cache
def _drift(threshold: float) -> dict[str, Any]:
    lines = (
        alt.Chart(_data("points"))
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
        alt.Chart(_data("threshold"))
        .mark_rule(color="#d62728", strokeDash=[6, 4])
        .encode(y="threshold:Q")
    )
    return _definition(
        alt.layer(lines, rule).properties(width=WIDTH, height=HEIGHT),
        f"Drift of spending (threshold {threshold:g})",
    )


def forecast(points: Rows) -> dict[str, Any]:
    return _filled(_forecast(), points=(points, ("day", "category", "p10", "p50", "p90")))


@cache
def _forecast() -> dict[str, Any]:
    base = alt.Chart(_data("points")).encode(
        x=alt.X("day:T", title="day"), color=alt.Color("category:N")
    )
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
    return _definition(
        alt.layer(band, line).properties(width=WIDTH, height=HEIGHT),
        "Forecast per category: median and 80% interval",
    )


BUDGET_COLUMNS = ("category", "budget", "spent", "p10", "p50", "p90", "status")


def budget(lines: Rows, month: str, currency: str = "USD") -> dict[str, Any]:
    """Budget against actual per category: what is spent, where the month is heading (median
    and 80% interval), and the budget itself."""
    return _filled(_budget(month, currency), lines=(lines, BUDGET_COLUMNS))


@cache
def _budget(month: str, currency: str) -> dict[str, Any]:
    base = alt.Chart(_data("lines")).encode(y=alt.Y("category:N", title=None, sort="-x"))
    status = alt.Color(
        "status:N",
        scale=alt.Scale(
            domain=["on_track", "at_risk", "over"], range=["#54a24b", "#f58518", "#e45756"]
        ),
        legend=alt.Legend(orient="bottom", title="status"),
    )
    tooltip = [
        "category:N",
        alt.Tooltip("spent:Q", format=",.2f"),
        alt.Tooltip("budget:Q", format=",.2f"),
        alt.Tooltip("p50:Q", format=",.2f", title="projected"),
        alt.Tooltip("p10:Q", format=",.2f", title="projected p10"),
        alt.Tooltip("p90:Q", format=",.2f", title="projected p90"),
        "status:N",
    ]
    projected = base.mark_bar(opacity=0.3, height=14).encode(
        x=alt.X("p50:Q", title=f"spent, projected month-end and budget ({currency})"),
        color=status,
    )
    spent = base.mark_bar(height=14).encode(x="spent:Q", color=status, tooltip=tooltip)
    interval = base.mark_rule(color="#555").encode(x="p10:Q", x2="p90:Q")
    limit = base.mark_tick(color="black", thickness=3, size=24).encode(x="budget:Q")
    return _definition(
        alt.layer(projected, spent, interval, limit).properties(width=WIDTH, height=HEIGHT),
        f"Budget against actual, {month} (bar: spent; shade: projected; line: 80% interval; "
        "tick: budget)",
    )
