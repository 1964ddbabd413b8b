"""Bank exports: CSV (recognised, or mapped by the form), OFX/QFX, CAMT.053 and QIF."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse

from schemas import Accepted, TransactionSource
from services.core.http import PayloadTooLarge, unprocessable, validation_error_body
from services.ingest.accepting import TRANSACTIONS_REJECTED, accept
from services.ingest.deps import CurrentUser, PublisherDep, SettingsDep
from services.ingest.imports import AccountRequired, CsvMapping, ImportErrors, parse_export

router = APIRouter(tags=["imports"])
Column = Annotated[str | None, Form(max_length=128)]


@dataclass
class MappingForm:
    """What the form says of a CSV's columns; whatever it leaves out is recognised."""

    date_column: Annotated[str | None, Form(description="Default: found by name")] = None
    amount_column: Annotated[
        str | None, Form(description="Signed amounts; or use debit/credit columns")
    ] = None
    debit_column: Column = None
    credit_column: Column = None
    description_column: Column = None
    merchant_column: Column = None
    category_column: Column = None
    id_column: Column = None
    type_column: Annotated[
        str | None, Form(description="Sale/Return/Payment or Debit/Credit: the direction")
    ] = None
    currency_column: Column = None
    date_format: Annotated[
        str | None, Form(description="strptime format; default: detected from the dates")
    ] = None
    negative_is_debit: Annotated[
        bool | None, Form(description="Default: the more common sign is money out")
    ] = None

    def mapping(self) -> CsvMapping:
        return CsvMapping(
            date=self.date_column,
            amount=self.amount_column,
            debit=self.debit_column,
            credit=self.credit_column,
            description=self.description_column,
            merchant=self.merchant_column,
            category=self.category_column,
            transaction_id=self.id_column,
            type=self.type_column,
            currency=self.currency_column,
            date_format=self.date_format,
            negative_is_debit=self.negative_is_debit,
        )


@router.post(
    "/v1/imports",
    status_code=202,
    response_model=Accepted,
    summary="Import a bank export: CSV (recognised or mapped), OFX/QFX, CAMT.053 or QIF",
    responses={422: {"description": "Problems, each naming its row and column; nothing published"}},
)
async def import_file(
    user_id: CurrentUser,
    settings: SettingsDep,
    publisher: PublisherDep,
    file: Annotated[UploadFile, File(description="CSV, OFX, QFX, CAMT.053 XML or QIF export")],
    columns: Annotated[MappingForm, Depends()],
    account_id: Annotated[
        str | None, Form(max_length=64, description="Required for CSV; OFX names its account")
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
    data = await file.read(settings.max_body_bytes + 1)
    if len(data) > settings.max_body_bytes:
        raise PayloadTooLarge(settings.max_body_bytes)
    try:
        # Off the event loop: a large or pathological file must not stall other requests.
        transactions = await asyncio.to_thread(
            parse_export,
            data.decode("utf-8-sig", errors="replace"),
            filename=file.filename or "",
            mapping=columns.mapping(),
            account_id=account_id,
            currency=currency,
            window=settings.timestamp_window,
            preset=preset,
        )
    except AccountRequired:
        return unprocessable("account_id", "account_id is required for CSV files", "missing")
    except ImportErrors as exc:
        TRANSACTIONS_REJECTED.labels("import", "invalid").inc()
        return JSONResponse(
            validation_error_body([e.as_dict() for e in exc.errors[:100]]), status_code=422
        )
    if not transactions:
        return JSONResponse(Accepted(accepted=0).model_dump(), status_code=202)
    return await accept(publisher, user_id, transactions, TransactionSource.import_)
