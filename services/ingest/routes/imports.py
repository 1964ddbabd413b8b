"""Bank exports: CSV or XLSX (recognised, or mapped by the form), OFX/QFX, CAMT.053 and QIF."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse

from schemas import Accepted, TransactionSource
from schemas.imports import CsvMapping
from services.core.http import PayloadTooLarge, unprocessable, validation_error_body
from services.ingest.accepting import TRANSACTIONS_REJECTED, accept
from services.ingest.deps import CurrentUser, PublisherDep, SettingsDep
from services.ingest.imports import AccountRequired, ImportErrors, parse_export

router = APIRouter(tags=["imports"])


def _mapping_form() -> Callable[..., CsvMapping]:
    """A dependency reading ``CsvMapping``'s options from the form, one field per option under
    its alias (``date_column``, ...), with the model's constraints and descriptions."""
    parameters = []
    for name in CsvMapping.OPTIONS:
        field = CsvMapping.model_fields[name]
        form = Form(description=field.description)
        parameters.append(
            inspect.Parameter(
                field.alias or name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[(field.annotation, *field.metadata, form)],
            )
        )

    def read(**given: Any) -> CsvMapping:
        return CsvMapping.model_validate({k: v for k, v in given.items() if v is not None})

    read.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return read


CsvMappingForm = Annotated[CsvMapping, Depends(_mapping_form())]


@router.post(
    "/v1/imports",
    status_code=202,
    response_model=Accepted,
    summary="Import a bank export: CSV or XLSX (recognised or mapped), OFX/QFX, CAMT.053 or QIF",
    responses={422: {"description": "Problems, each naming its row and column; nothing published"}},
)
async def import_file(
    user_id: CurrentUser,
    settings: SettingsDep,
    publisher: PublisherDep,
    file: Annotated[
        UploadFile, File(description="CSV, XLSX, OFX, QFX, CAMT.053 XML or QIF export")
    ],
    mapping: CsvMappingForm,
    account_id: Annotated[
        str | None,
        Form(
            max_length=64,
            description="Required for CSV, XLSX and QIF; OFX and CAMT.053 name theirs",
        ),
    ] = None,
    currency: Annotated[str | None, Form(pattern=r"^[A-Z]{3}$")] = None,
    preset: Annotated[
        str | None,
        Form(
            max_length=32,
            description="A bank's export format (chase, bofa, amex, capital-one, monzo, "
            "revolut, n26, wise, ...); default: recognised from the header",
        ),
    ] = None,
) -> JSONResponse:
    data = await file.read(settings.ingest.max_body_bytes + 1)
    if len(data) > settings.ingest.max_body_bytes:
        raise PayloadTooLarge(settings.ingest.max_body_bytes)
    try:
        # Off the event loop: a large or pathological file must not stall other requests.
        transactions = await asyncio.to_thread(
            parse_export,
            data,
            filename=file.filename or "",
            mapping=mapping,
            account_id=account_id,
            currency=currency,
            window=settings.ingest.timestamp_window,
            preset=preset,
        )
    except AccountRequired as exc:
        return unprocessable("account_id", f"{exc}: give account_id", "missing")
    except ImportErrors as exc:
        TRANSACTIONS_REJECTED.labels("import", "invalid").inc()
        return JSONResponse(
            validation_error_body([e.as_dict() for e in exc.errors[:100]]), status_code=422
        )
    if not transactions:
        return JSONResponse(Accepted(accepted=0).model_dump(), status_code=202)
    return await accept(publisher, user_id, transactions, TransactionSource.import_)
