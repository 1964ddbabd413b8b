"""The caller's transactions as a spreadsheet: CSV streamed row chunk by row chunk, or .xlsx with
a summary sheet. Both take the transaction list's filters."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from services.api import store
from services.api.deps import CurrentUser, FilterDep, PoolDep
from services.api.exports import Workbook, csv_chunk

router = APIRouter(prefix="/v1/exports", tags=["exports"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


@router.get(
    "/transactions.csv",
    summary="Your transactions as CSV, streamed: category, source, scores, anomaly flag, note",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"example": "transaction_id,account_id,...\n"}}}},
)
async def export_csv(pool: PoolDep, user_id: CurrentUser, query: FilterDep) -> StreamingResponse:
    filters = await query.filter(pool, user_id)

    async def body() -> AsyncIterator[str]:
        yield csv_chunk([], header=True)
        async for rows in store.stream_transactions(pool, user_id, filters):
            yield csv_chunk(rows)

    return StreamingResponse(
        body(), media_type="text/csv; charset=utf-8", headers=attachment("transactions.csv")
    )


@router.get(
    "/transactions.xlsx",
    summary="Your transactions as an Excel workbook, with a summary sheet",
    description="Sheets: Summary (spent, received, transactions and unusual ones per month, "
    "category and currency), then Transactions (continued on further sheets past Excel's "
    "1,048,576 rows).",
    response_class=FileResponse,
    responses={200: {"content": {XLSX: {}}}},
)
async def export_xlsx(pool: PoolDep, user_id: CurrentUser, query: FilterDep) -> FileResponse:
    filters = await query.filter(pool, user_id)
    handle, name = tempfile.mkstemp(prefix="spendstream-export-", suffix=".xlsx")
    os.close(handle)
    path = Path(name)
    try:
        book = await asyncio.to_thread(Workbook, name)
        async for rows in store.stream_transactions(pool, user_id, filters):
            await asyncio.to_thread(book.add, rows)  # writing cells is CPU work: off the loop
        await asyncio.to_thread(book.close)
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    return FileResponse(
        path,
        media_type=XLSX,
        headers=attachment("transactions.xlsx"),
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
