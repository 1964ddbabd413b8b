"""Turns a request body into validated transactions, or into per-item errors that name the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas import Transaction
from schemas.transaction import TIMESTAMP_WINDOW, TimestampWindow
from services.core.http import error_entry


@dataclass(frozen=True)
class FieldError:
    loc: tuple[str | int, ...]
    msg: str
    type: str
    index: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out = error_entry(self.loc, self.msg, self.type)
        if self.index is not None:
            out["index"] = self.index
        return out


class InvalidBody(Exception):
    def __init__(self, errors: list[FieldError]):
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


# One validation call for the whole list: a Python loop over per-item calls cost a third more.
_TRANSACTIONS = TypeAdapter(list[Transaction])


def _errors_of(
    exc: ValidationError, prefix: tuple[str | int, ...], batch: bool
) -> list[FieldError]:
    """Errors of validating the item list, each located in the body and, in a batch, by index."""
    errors = []
    for e in exc.errors(include_url=False, include_input=False):
        index, *field = e["loc"]
        loc = (*prefix, index, *field) if batch else (*prefix, *field)
        errors.append(
            FieldError(loc=loc, msg=e["msg"], type=e["type"], index=int(index) if batch else None)
        )
    return errors


def parse_transactions(
    raw: bytes, *, max_items: int, window: TimestampWindow | None = None
) -> list[Transaction]:
    """One transaction object or ``{"transactions": [...]}``: all valid, or ``InvalidBody``.
    With ``window``, timestamps outside it are invalid too."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody([FieldError(("body",), f"invalid JSON: {exc}", "json_invalid")]) from None

    if isinstance(body, dict) and "transactions" in body:
        extra = sorted(set(body) - {"transactions"})
        if extra:
            raise InvalidBody(
                [
                    FieldError(
                        ("body", extra[0]), "Extra inputs are not permitted", "extra_forbidden"
                    )
                ]
            )
        items = body["transactions"]
        if not isinstance(items, list):
            raise InvalidBody(
                [FieldError(("body", "transactions"), "Input should be a valid list", "list_type")]
            )
        if not items:
            raise InvalidBody(
                [
                    FieldError(
                        ("body", "transactions"),
                        "at least one transaction is required",
                        "too_short",
                    )
                ]
            )
        if len(items) > max_items:
            raise InvalidBody(
                [
                    FieldError(
                        ("body", "transactions"),
                        f"at most {max_items} transactions per request, got {len(items)}",
                        "too_long",
                    )
                ]
            )
        prefix: tuple[str | int, ...] = ("body", "transactions")
    elif isinstance(body, dict):
        items, prefix = [body], ("body",)
    else:
        raise InvalidBody(
            [
                FieldError(
                    ("body",),
                    'expected a transaction object or {"transactions": [...]}',
                    "model_type",
                )
            ]
        )

    try:
        context = {TIMESTAMP_WINDOW: window} if window else None
        return _TRANSACTIONS.validate_python(items, context=context)
    except ValidationError as exc:
        raise InvalidBody(_errors_of(exc, prefix, batch=prefix != ("body",))) from None
