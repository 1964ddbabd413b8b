"""The dashboard page, its icon and the Vega bundle it draws charts with (no CDN)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import vl_convert as vlc
from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(include_in_schema=False)


def vega_bundle_source() -> str:
    bundle: str = vlc.javascript_bundle()  # type: ignore[call-arg]
    return bundle


@router.get("/")
async def dashboard() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


@router.get("/static/vega.js")
async def vega_bundle(request: Request) -> Response:
    # Vega, Vega-Lite and vega-embed from vl-convert's own copy: no CDN, works offline.
    state = request.app.state
    if not hasattr(state, "vega_bundle"):
        state.vega_bundle = await asyncio.to_thread(vega_bundle_source)
    return Response(
        state.vega_bundle,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )
