"""Turns a request body into validated transactions, or into per-item errors that name the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas import Transaction
from schemas.transaction import TIMESTAMP_WINDOW, Identifier, TimestampWindow
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


_REMOVED = TypeAdapter(list[Identifier])


def _batch_items(body: dict[str, Any], max_items: int) -> tuple[list[Any], list[str]]:
    """The items of ``{"transactions": [...], "removed": [...]}``, checked for shape."""
    extra = sorted(set(body) - {"transactions", "removed"})
    if extra:
        raise InvalidBody(
            [FieldError(("body", extra[0]), "Extra inputs are not permitted", "extra_forbidden")]
        )
    items, removed = body.get("transactions", []), body.get("removed", [])
    for name, value in (("transactions", items), ("removed", removed)):
        if not isinstance(value, list):
            raise InvalidBody(
                [FieldError(("body", name), "Input should be a valid list", "list_type")]
            )
        if len(value) > max_items:
            raise InvalidBody(
                [
                    FieldError(
                        ("body", name),
                        f"at most {max_items} {name} per request, got {len(value)}",
                        "too_long",
                    )
                ]
            )
    if not items and not removed:
        raise InvalidBody(
            [
                FieldError(
                    ("body", "transactions"),
                    "at least one transaction (or a `removed` id) is required",
                    "too_short",
                )
            ]
        )
    try:
        ids = _REMOVED.validate_python(removed)
    except ValidationError as exc:
        raise InvalidBody(_errors_of(exc, ("body", "removed"), batch=True)) from None
    return items, ids


def parse_body(
    raw: bytes, *, max_items: int, window: TimestampWindow | None = None
) -> tuple[list[Transaction], list[str]]:
    """One transaction object, or ``{"transactions": [...], "removed": [ids]}``: all valid, or
    ``InvalidBody``. With ``window``, timestamps outside it are invalid too."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody([FieldError(("body",), f"invalid JSON: {exc}", "json_invalid")]) from None
    removed: list[str] = []
    if isinstance(body, dict) and ("transactions" in body or "removed" in body):
        items, removed = _batch_items(body, max_items)
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
        return _TRANSACTIONS.validate_python(items, context=context), removed
    except ValidationError as exc:
        raise InvalidBody(_errors_of(exc, prefix, batch=prefix != ("body",))) from None


def parse_transactions(
    raw: bytes, *, max_items: int, window: TimestampWindow | None = None
) -> list[Transaction]:
    """``parse_body`` for a caller that takes no removals."""
    return parse_body(raw, max_items=max_items, window=window)[0]
