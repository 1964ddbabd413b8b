from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from pydantic import ValidationError

from schemas import EVENT_MODELS, Transaction, TransactionEvent
from schemas.transaction import TIMESTAMP_WINDOW, TimestampWindow

VALID = {
    "transaction_id": "t-1",
    "account_id": "checking",
    "timestamp": "2026-11-03T12:41:07+01:00",
    "amount": "42.17",
}


def nested(levels: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"x": value}
    return value


def fields_in_error(exc: ValidationError) -> set[str]:
    return {str(e["loc"][-1]) for e in exc.errors()}


def test_minimal_transaction_gets_defaults() -> None:
    tx = Transaction.model_validate(VALID)
    assert tx.amount == Decimal("42.17")
    assert (tx.direction.value, tx.currency, tx.channel.value) == ("debit", "USD", "other")
    assert tx.timestamp.utcoffset() is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "12.345"),
        ("amount", "0"),
        ("amount", "-3.10"),
        ("amount", "NaN"),
        ("amount", "Infinity"),
        ("timestamp", "2026-11-03T12:41:07"),
        ("timestamp", "yesterday"),
        ("timestamp", "2026-11-03T12:41:07+17:00"),
        ("timestamp", "2026-11-03T12:41:07-14:30"),
        ("transaction_id", ""),
        ("transaction_id", "x" * 65),
        ("transaction_id", "has space"),
        ("currency", "DOLLARS"),
        ("country", "USA"),
        ("direction", "sideways"),
        ("channel", "pigeon"),
        ("metadata", {"blob": "x" * 3000}),
        ("metadata", nested(9)),
        ("metadata", nested(250)),
        ("metadata", {"note": "a\x00b"}),
        ("metadata", {"a\x00": 1}),
        ("metadata", {"list": [1, ["x\x00"]]}),
        ("metadata", {"big": 2**64}),
        ("merchant", "CORNER\x00SHOP"),
        ("description", "\x00"),
        ("category", "Food\x00"),
    ],
)
def test_invalid_values_name_their_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        Transaction.model_validate({**VALID, field: value})
    assert field in fields_in_error(info.value)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as info:
        Transaction.model_validate({**VALID, "user_id": "someone-else"})
    assert "user_id" in fields_in_error(info.value)


def test_codes_are_normalised_to_upper_case() -> None:
    tx = Transaction.model_validate({**VALID, "currency": "eur", "country": "de"})
    assert (tx.currency, tx.country) == ("EUR", "DE")


def test_event_round_trips_through_json() -> None:
    event = TransactionEvent.model_validate(
        {**VALID, "user_id": "u1", "ingested_at": "2026-11-03T12:00:00Z"}
    )
    again = TransactionEvent.model_validate_json(event.model_dump_json())
    assert again == event
    assert again.schema_version == 1


def test_every_event_exports_a_json_schema() -> None:
    for name, model in EVENT_MODELS.items():
        schema = model.model_json_schema()
        assert schema["title"] == name
        assert schema.get("additionalProperties") is False
        described = [p for p in schema["properties"].values() if "description" in p]
        assert len(described) == len(schema["properties"]), name


def test_metadata_eight_levels_deep_is_fine() -> None:
    assert Transaction.model_validate({**VALID, "metadata": nested(8)}).metadata == nested(8)


NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timestamp", "accepted"),
    [
        ("1970-01-01T00:00:00Z", True),
        ("1969-12-31T23:59:59Z", False),
        ("0001-01-01T00:30:00+01:00", False),
        ("2026-12-03T11:59:59Z", True),  # a day ahead: a bank in a later timezone, clock skew
        ("2026-12-03T12:00:01Z", False),
        ("9999-12-31T12:00:00+00:00", False),
    ],
)
def test_ingest_accepts_timestamps_in_its_window_only(timestamp: str, accepted: bool) -> None:
    with time_machine.travel(NOW, tick=False):
        context = {TIMESTAMP_WINDOW: TimestampWindow()}  # made per request, at its "now"
        if accepted:
            Transaction.model_validate({**VALID, "timestamp": timestamp}, context=context)
            return
        with pytest.raises(ValidationError) as info:
            Transaction.model_validate({**VALID, "timestamp": timestamp}, context=context)
    assert fields_in_error(info.value) == {"timestamp"}


def test_the_window_is_configurable_and_events_already_accepted_are_not_rechecked() -> None:
    later = {**VALID, "timestamp": "2026-12-20T00:00:00Z"}
    week = {TIMESTAMP_WINDOW: TimestampWindow(max_ahead=timedelta(days=30))}
    with time_machine.travel(NOW, tick=False):
        Transaction.model_validate(later, context=week)
        event = {**later, "user_id": "u", "ingested_at": "2026-12-02T12:00:00Z"}
        assert TransactionEvent.model_validate(event).timestamp.day == 20
