from decimal import Decimal

import pytest
from pydantic import ValidationError

from schemas import EVENT_MODELS, Transaction, TransactionEvent

VALID = {
    "transaction_id": "t-1",
    "account_id": "checking",
    "timestamp": "2026-11-03T12:41:07+01:00",
    "amount": "42.17",
}


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
        ("transaction_id", ""),
        ("transaction_id", "x" * 65),
        ("transaction_id", "has space"),
        ("currency", "DOLLARS"),
        ("country", "USA"),
        ("direction", "sideways"),
        ("channel", "pigeon"),
        ("metadata", {"blob": "x" * 3000}),
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
