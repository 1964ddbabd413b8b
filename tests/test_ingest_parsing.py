import orjson
import pytest

from services.ingest.parsing import InvalidBody, parse_transactions

GOOD = {"transaction_id": "a", "account_id": "c", "timestamp": "2026-01-01T00:00:00Z", "amount": 5}


def test_single_object_and_batch_are_both_accepted() -> None:
    assert len(parse_transactions(orjson.dumps(GOOD), max_items=10)) == 1
    batch = {"transactions": [GOOD, {**GOOD, "transaction_id": "b"}]}
    assert [t.transaction_id for t in parse_transactions(orjson.dumps(batch), max_items=10)] == [
        "a",
        "b",
    ]


def test_batch_errors_name_index_and_field() -> None:
    batch = {
        "transactions": [
            GOOD,
            {**GOOD, "amount": "1.234"},
            GOOD,
            {**GOOD, "timestamp": "2026-01-01T00:00:00"},
        ]
    }
    with pytest.raises(InvalidBody) as info:
        parse_transactions(orjson.dumps(batch), max_items=10)
    errors = [e.as_dict() for e in info.value.errors]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "amount"), (3, "timestamp")]
    assert errors[0]["loc"] == ["body", "transactions", 1, "amount"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"transactions": []}', "transactions"),
        (b'{"transactions": {}}', "transactions"),
        (b'{"transactions": [], "extra": 1}', "extra"),
    ],
)
def test_malformed_bodies(body: bytes, field: str) -> None:
    with pytest.raises(InvalidBody) as info:
        parse_transactions(body, max_items=10)
    assert info.value.errors[0].as_dict()["field"] == field


def test_too_many_items() -> None:
    body = orjson.dumps({"transactions": [GOOD] * 11})
    with pytest.raises(InvalidBody) as info:
        parse_transactions(body, max_items=10)
    assert info.value.errors[0].type == "too_long"


def test_stamped_messages_are_the_events_consumers_validate() -> None:
    from datetime import UTC, datetime

    import time_machine

    from schemas import TransactionEvent, TransactionSource
    from services.ingest.publisher import stamped

    body = {"transactions": [GOOD, {**GOOD, "transaction_id": "b", "metadata": {"x": [1, "}"]}}]}
    transactions = parse_transactions(orjson.dumps(body), max_items=10)
    ingested = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    with time_machine.travel(ingested, tick=False):
        messages = stamped(transactions, "user-1", TransactionSource.webhook)
    events = [TransactionEvent.model_validate_json(value) for _, value in messages]
    assert [key for key, _ in messages] == [b"c", b"c"]
    for tx, event in zip(transactions, events, strict=True):
        assert event.model_dump(exclude={"user_id", "ingested_at", "source", "schema_version"}) == (
            tx.model_dump()
        )
        assert (event.user_id, event.source) == ("user-1", TransactionSource.webhook)
        assert event.ingested_at == ingested
    assert events[1].metadata == {"x": [1, "}"]}
