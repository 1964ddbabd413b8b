"""Charts as Vega-Lite specs, or rendered to PNG or SVG a few at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

import orjson
import vl_convert as vlc
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from services.api.chart_data import DEFAULT_WEEKS, budget_chart, chart_spec
from services.api.charts import CHARTS
from services.api.deps import CurrentUser, PoolDep, SettingsDep
from services.api.models import MONTH_PATTERN

router = APIRouter(prefix="/v1/charts", tags=["charts"])
RENDERERS: dict[str, tuple[str, Callable[[dict[str, Any]], Any] | None]] = {
    "json": ("application/json", None),
    "png": ("image/png", vlc.vegalite_to_png),
    "svg": ("image/svg+xml", vlc.vegalite_to_svg),
}


@router.get(
    "/{chart_file}",
    summary="A chart as an interactive Vega-Lite spec (.json) or rendered (.png, .svg)",
    responses={
        200: {"content": {"application/json": {}, "image/png": {}, "image/svg+xml": {}}},
        404: {"description": "Unknown chart or format"},
    },
    response_model=None,
)
async def get_chart(
    request: Request,
    pool: PoolDep,
    settings: SettingsDep,
    user_id: CurrentUser,
    chart_file: Annotated[
        str,
        Path(
            description="trend, heatmap, anomalies, categories, drift, forecast or budget, "
            "followed by .json, .png or .svg",
            examples=["trend.png"],
        ),
    ],
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    weeks: Annotated[int, Query(ge=1, le=260, description="How far back")] = DEFAULT_WEEKS,
    month: Annotated[
        str | None,
        Query(pattern=MONTH_PATTERN, description="YYYY-MM, for the budget chart; default: now"),
    ] = None,
) -> Response:
    name, _, fmt = chart_file.partition(".")
    if name not in CHARTS or fmt not in RENDERERS:
        raise HTTPException(
            404,
            f"unknown chart {chart_file!r}: use one of {', '.join(CHARTS)} "
            f"with .{', .'.join(RENDERERS)}",
        )
    if name == "budget":
        spec = await budget_chart(pool, user_id, month)
    else:
        spec = await chart_spec(pool, name, user_id, account_id, weeks, settings.drift.threshold)
    media_type, render = RENDERERS[fmt]
    if render is None:
        body = orjson.dumps(spec)
    else:
        async with request.app.state.rendering:  # a render holds a core: a few at a time
            body = await asyncio.to_thread(render, spec)
    return Response(body, media_type=media_type, headers={"Cache-Control": "private, max-age=30"})
