"""The transaction contract: what clients post and what travels on ``transactions.v1``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.currency import minor_units

SCHEMA_VERSION = 1
MAX_METADATA_BYTES = 2048
MAX_METADATA_DEPTH = 8
MAX_BATCH_ITEMS = 10_000
MAX_UTC_OFFSET = timedelta(hours=14)
# The validation context key under which ingest hands in its TimestampWindow.
TIMESTAMP_WINDOW = "timestamp_window"


class TimestampWindow(BaseModel):
    """The event times ingest accepts: from ``earliest`` to ``max_ahead`` past its clock.

    Applied where a transaction comes in (ingest passes it as validation context, made once per
    request), never to an event already accepted: a consumer must not dead-letter what a client
    was told was accepted.
    """

    model_config = ConfigDict(frozen=True)

    earliest: AwareDatetime = Field(datetime(1970, 1, 1, tzinfo=UTC))
    max_ahead: timedelta = Field(timedelta(days=1))
    now: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    def problem(self, value: datetime) -> str | None:
        if value < self.earliest:
            return f"must not be before {self.earliest.isoformat()}"
        if value > self.now + self.max_ahead:
            hours = self.max_ahead.total_seconds() / 3600
            return f"must not be more than {hours:g} hours ahead of now"
        return None


def _nests_deeper_than(value: Any, limit: int) -> bool:
    """Iterative, and stops at the limit: a hostile body cannot exhaust the stack here."""
    level: list[Any] = [value]
    for _ in range(limit + 1):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return True


def _has_nul(value: JsonValue) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class Direction(StrEnum):
    debit = "debit"
    credit = "credit"


class Channel(StrEnum):
    card = "card"
    online = "online"
    transfer = "transfer"
    atm = "atm"
    other = "other"


class TransactionSource(StrEnum):
    api = "api"
    webhook = "webhook"
    import_ = "import"
    demo = "demo"
    manual = "manual"  # entered by hand in the dashboard


Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s\x00-\x1f]+$")]
# PostgreSQL text cannot hold U+0000: accepted, such a row could never be stored. A pattern is
# checked in pydantic-core, without a Python call per field.
NO_NUL = r"^[^\x00]*$"
ShortText = Annotated[str, Field(max_length=200, pattern=NO_NUL)]


class Transaction(BaseModel):
    """One money movement on one account, as a bank, an app or an import reports it."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "transaction_id": "tx-20261103-0001",
                    "account_id": "checking-1",
                    "timestamp": "2026-11-03T12:41:07+01:00",
                    "amount": "42.17",
                    "direction": "debit",
                    "currency": "EUR",
                    "merchant": "Whole Foods Market #1021",
                    "category": "Groceries",
                    "channel": "card",
                    "country": "DE",
                }
            ]
        },
    )

    transaction_id: Identifier = Field(
        description="Unique per user; the idempotency key. Re-sending the same id changes "
        "nothing, unless it carries a higher `revision`."
    )
    account_id: Identifier = Field(description="The user's account the money moved on.")
    timestamp: AwareDatetime = Field(
        description="When the transaction happened, ISO 8601 with a timezone offset. Ingest "
        "accepts 1970-01-01 up to a day ahead of its clock (configurable)."
    )
    # Before the amount: the amount's decimals are checked against the currency's minor units.
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. USD.")
    amount: Decimal = Field(
        gt=0,
        max_digits=15,
        decimal_places=3,
        allow_inf_nan=False,
        description="Positive amount in the currency's ISO 4217 minor units: no decimals for "
        "JPY, 2 for USD or EUR, 3 for KWD or BHD. The sign is in `direction`.",
    )
    direction: Direction = Field(Direction.debit, description="`debit` spends, `credit` receives.")
    merchant: ShortText | None = Field(None, description="Merchant name as the bank shows it.")
    description: Annotated[str, Field(max_length=500, pattern=NO_NUL)] | None = Field(
        None, description="Free-text bank description."
    )
    category: Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)] | None = Field(
        None, description="Spending category; when absent Spendstream predicts one."
    )
    channel: Channel = Field(Channel.other, description="How the money moved.")
    country: str | None = Field(
        None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country of the merchant."
    )
    metadata: dict[str, JsonValue] | None = Field(
        None,
        description=f"Small JSON object (at most {MAX_METADATA_BYTES} bytes serialized, "
        f"{MAX_METADATA_DEPTH} levels deep).",
    )
    revision: int = Field(
        1,
        ge=1,
        le=2**31 - 1,
        description="A bank feed revises a transaction (a pending charge that posts with another "
        "amount) by sending the same id with a higher revision; an equal or lower one changes "
        "nothing.",
    )
    status: Literal["pending", "posted"] | None = Field(
        None, description="`pending` until the bank posts it, then `posted`."
    )

    @field_validator("currency", "country", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("amount")
    @classmethod
    def _in_minor_units(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        currency = info.data.get("currency")
        if currency is None:  # the currency failed on its own; that error says enough
            return value
        places = minor_units(currency)
        if value != value.quantize(Decimal(1).scaleb(-places)):
            unit = "no decimals" if places == 0 else f"at most {places} decimals"
            raise ValueError(f"{currency} amounts have {unit} (ISO 4217 minor units)")
        return value

    @field_validator("timestamp")
    @classmethod
    def _storable_time(cls, value: datetime, info: ValidationInfo) -> datetime:
        # Offsets in use on Earth run from -12:00 to +14:00; PostgreSQL cannot even parse some
        # of what Python allows (up to 23:59), so such a row could be accepted and never stored.
        offset = value.utcoffset()
        if offset is not None and not -MAX_UTC_OFFSET <= offset <= MAX_UTC_OFFSET:
            raise ValueError("UTC offset must lie between -14:00 and +14:00")
        window = info.context.get(TIMESTAMP_WINDOW) if info.context else None
        if window is not None and (problem := window.problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("metadata", mode="before")
    @classmethod
    def _shallow_metadata(cls, value: Any) -> Any:
        # Before the JSON value is validated: it bounds the recursion of everything after it.
        if _nests_deeper_than(value, MAX_METADATA_DEPTH):
            raise ValueError(f"metadata must nest at most {MAX_METADATA_DEPTH} levels deep")
        return value

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        if value is None:
            return None
        if _has_nul(value):
            raise ValueError("metadata must not contain the NUL character (U+0000)")
        try:
            size = len(orjson.dumps(value))
        except TypeError:  # an integer beyond 64 bits: no consumer could read it back
            raise ValueError("metadata numbers must fit in 64-bit integers") from None
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must serialize to at most {MAX_METADATA_BYTES} bytes")
        return value


class TransactionBatch(BaseModel):
    """Several transactions posted at once, and transactions the bank removed: all are accepted
    or none."""

    model_config = ConfigDict(extra="forbid")

    transactions: list[Transaction] = Field(
        default_factory=list,
        max_length=MAX_BATCH_ITEMS,
        description="Up to 10,000 transactions (at least one, unless `removed` names some).",
    )
    removed: list[Identifier] = Field(
        default_factory=list,
        max_length=MAX_BATCH_ITEMS,
        description="Ids of transactions the bank removed (a reversed charge, a duplicate): "
        "they disappear everywhere.",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.transactions and not self.removed:
            raise ValueError("send at least one transaction or one `removed` id")
        return self


class TransactionEvent(Transaction):
    """A validated transaction on ``transactions.v1``, stamped with its owner by ingest."""

    schema_version: Literal[1] = Field(1, description="Version of this event schema.")
    user_id: Identifier = Field(description="Owner, taken from authentication, never the body.")
    ingested_at: datetime = Field(description="When ingest accepted it (UTC).")
    source: TransactionSource = Field(TransactionSource.api, description="Which door it came in.")


class Accepted(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepted: int = Field(description="How many transactions the broker acknowledged.")
    removed: int = Field(
        0, description="How many removals the broker acknowledged; absent when none were sent."
    )


class WebhookPayload(TransactionBatch):
    """What a bank or aggregator posts to the signed webhook: a batch, and whose it is."""

    model_config = ConfigDict(extra="forbid")

    user_id: Identifier = Field(description="The Spendstream user the transactions belong to.")
