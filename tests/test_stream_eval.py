"""``eval anomalies --stream``'s parts that need no stack: reading a labelled file as imports
read one, and the confirmations a chargeback feed posts, through an API that rate-limits them,
to a scorer that takes them in a moment later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from services.devstack.stream_eval import StreamColumns, _Feedback, read_stream
from services.scorer.registry import CONFIRMED_FRAUD_REMEMBERED_METRIC

TODAY = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


async def test_confirmations_wait_out_the_rate_limit_and_the_scorer_takes_them_in() -> None:
    frame = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2", "t3"],
            "account_id": ["a", "a", "b"],
            "timestamp": ["2026-04-01T10:00:00Z", "2026-04-02T10:00:00Z", "2026-04-03T10:00:00Z"],
            "amount": [10.0, 900.0, 800.0],
            "is_anomaly": [0, 1, 1],
        }
    )
    stream = read_stream(frame, StreamColumns(merchant=None, channel=None), now=TODAY)
    answers = iter([429, 429, 200, 503, 200])
    confirmed: list[str] = []
    taken_in = iter([0, 1, 2])  # the scorer's count, as it looks every few seconds
    looks = 0

    def api(request: httpx.Request) -> httpx.Response:
        nonlocal looks
        if request.url.host == "scorer":
            looks += 1
            return httpx.Response(
                200, text=f"{CONFIRMED_FRAUD_REMEMBERED_METRIC} {next(taken_in)}.0\n"
            )
        status = next(answers)
        if status == 200:
            confirmed.append(request.url.path)
        return httpx.Response(status, headers={"Retry-After": "0"}, json={})

    keys = {record.user_id: "key" for record in stream.records}
    feedback = _Feedback("http://api", "http://scorer", keys, stream, timedelta(days=7))
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as client:
        assert await feedback.due(client, stream.times[1] + timedelta(days=6)) == 0
        assert await feedback.due(client, stream.times[2] + timedelta(days=7)) == 2
    assert confirmed == ["/v1/anomalies/t2/feedback", "/v1/anomalies/t3/feedback"]
    assert looks == 3, "the next day waits until the scorer has taken in both confirmations"


def test_a_bank_export_signed_either_way_reads_as_money_out_and_in() -> None:
    """As imports read a signed column: the more common sign is money out. Amounts as exports
    print them, and times as seconds since 1970, are read too."""
    april_first = 1_775_001_600  # 2026-04-01T00:00:00Z
    frame = pd.DataFrame(
        {
            "id": ["t1", "t2", "t3", "t4"],
            "acct": ["a"] * 4,
            "when": [april_first + 3600 * h for h in (3, 1, 2, 4)],
            "value": ["-$1,234.50", "-12.00", "2,500.00", "(8.99)"],
            "fraud": ["yes", "no", "no", "no"],
        }
    )
    columns = StreamColumns(
        transaction_id="id",
        account="acct",
        timestamp="when",
        amount="value",
        merchant=None,
        channel=None,
        label="fraud",
    )
    stream = read_stream(frame, columns, now=TODAY)
    bodies = [record.transaction for record in stream.records]
    assert [b["transaction_id"] for b in bodies] == ["t2", "t3", "t1", "t4"], "in time order"
    assert [(b["amount"], b["direction"]) for b in bodies] == [
        ("12.00", "debit"),
        ("2500.00", "credit"),
        ("1234.50", "debit"),
        ("8.99", "debit"),
    ]
    assert bodies[0]["timestamp"] == "2026-04-01T01:00:00+00:00"
    assert stream.labels.tolist() == [0, 0, 1, 0]

    card_network = frame.assign(value=["1234.50", "12.00", "-25.00", "8.99"])
    directions = [
        r.transaction["direction"] for r in read_stream(card_network, columns, TODAY).records
    ]
    assert directions == ["debit", "credit", "debit", "debit"], "positive charges, a refund"

    with pytest.raises(ValueError, match="column value: row 3 is not an amount"):
        read_stream(frame.assign(value=["1.00", "n/a", "2.00", "3.00"]), columns, TODAY)


def test_a_stream_that_ends_in_the_future_moves_back_by_whole_weeks() -> None:
    """A generator's year to come: ingest takes no time more than a day ahead, so the stream
    ends by today, on the same weekdays and hours."""
    frame = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2"],
            "account_id": ["a", "a"],
            "timestamp": ["2026-12-01 09:30:00", "2026-12-31 18:00:00"],
            "amount": [10.0, 20.0],
            "is_anomaly": [0, 0],
        }
    )
    stream = read_stream(frame, StreamColumns(merchant=None, channel=None), now=TODAY)
    assert stream.moved_back == timedelta(weeks=4)
    assert stream.times[-1] == datetime(2026, 12, 3, 18, 0, tzinfo=UTC), "a Thursday still"
    assert [r.transaction["timestamp"] for r in stream.records] == [
        "2026-11-03T09:30:00+00:00",
        "2026-12-03T18:00:00+00:00",
    ]
    past = read_stream(frame.iloc[:1], StreamColumns(merchant=None, channel=None), now=TODAY)
    assert past.moved_back == timedelta(0) and past.times[0].day == 1, "in the past: as it is"


def test_a_debit_or_credit_column_says_the_direction_of_unsigned_amounts() -> None:
    """As imports read a type column beside amounts without a sign: where it says debit or
    credit, that is the direction; where it says nothing known, money out. Signed amounts go by
    their sign."""
    frame = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2", "t3", "t4"],
            "account_id": ["a"] * 4,
            "timestamp": [f"2026-04-0{d}T10:00:00Z" for d in (1, 2, 3, 4)],
            "amount": [2500.0, 12.0, 40.0, 30.0],
            "Transaction_Type": ["CREDIT", "Purchase", "refund", "unknown"],
            "is_anomaly": [0, 0, 0, 0],
        }
    )
    columns = StreamColumns(merchant=None, channel=None)
    stream = read_stream(frame, columns, TODAY)
    assert [r.transaction["direction"] for r in stream.records] == [
        "credit",
        "debit",
        "credit",
        "debit",
    ], "found by its name, as imports find it"
    assert [r.transaction["amount"] for r in stream.records] == [
        "2500.00",
        "12.00",
        "40.00",
        "30.00",
    ]
    signed = frame.assign(amount=[2500.0, -12.0, 40.0, 30.0])
    directions = [r.transaction["direction"] for r in read_stream(signed, columns, TODAY).records]
    assert directions == ["debit", "credit", "debit", "debit"], "the sign, not the type, decides"
    with pytest.raises(ValueError, match="no column"):
        read_stream(frame, StreamColumns(merchant=None, channel=None, kind="dr_cr"), TODAY)


def test_third_party_streams_are_read_by_their_own_column_names() -> None:
    """The Fraud Detection Handbook's simulator and a Sparkov-style generator, each as it writes
    its file, without a column option: each column is found by the name that stream gives it,
    and neither's second clock (seconds from the simulation's start, a unix_time years off) is
    taken for the time."""
    handbook = pd.DataFrame(
        {
            "TRANSACTION_ID": [0, 1],
            "TX_DATETIME": ["2026-04-01 00:00:31", "2026-04-01 00:02:10"],
            "CUSTOMER_ID": [596, 4961],
            "TERMINAL_ID": [3156, 3412],
            "TX_AMOUNT": [57.16, 81.51],
            "TX_TIME_SECONDS": [31, 130],
            "TX_TIME_DAYS": [0, 0],
            "TX_FRAUD": [0, 1],
            "TX_FRAUD_SCENARIO": [0, 2],
        }
    )
    stream = read_stream(handbook, StreamColumns(), now=TODAY)
    assert stream.columns == StreamColumns(
        transaction_id="TRANSACTION_ID",
        account="CUSTOMER_ID",
        timestamp="TX_DATETIME",
        amount="TX_AMOUNT",
        merchant="TERMINAL_ID",
        channel=None,
        label="TX_FRAUD",
    )
    first = stream.records[0].transaction
    assert (first["transaction_id"], first["account_id"], first["merchant"]) == ("0", "596", "3156")
    assert stream.times[1] == datetime(2026, 4, 1, 0, 2, 10, tzinfo=UTC)
    assert list(stream.labels) == [0, 1]

    sparkov = pd.DataFrame(
        {
            "Unnamed: 0": [0, 1],
            "trans_date_trans_time": ["2026-06-21 12:14:25", "2026-06-21 12:14:33"],
            "cc_num": [2291163933867244, 3573030041201292],
            "merchant": ["fraud_Kirlin and Sons", "fraud_Sporer-Keebler"],
            "category": ["personal_care", "personal_care"],
            "amt": [2.86, 29.84],
            "trans_num": ["2da90c7d74bd46a0caf3777415b3ebd3", "324cc204407e99f51b0d6ca0055005e7"],
            "unix_time": [1371816865, 1371816873],
            "is_fraud": [0, 1],
        }
    )
    stream = read_stream(sparkov, StreamColumns(), now=TODAY)
    assert (stream.columns.transaction_id, stream.columns.account) == ("trans_num", "cc_num")
    assert (stream.columns.amount, stream.columns.label) == ("amt", "is_fraud")
    assert stream.times[0] == datetime(2026, 6, 21, 12, 14, 25, tzinfo=UTC), "not unix_time's 2013"
    assert [r.transaction["amount"] for r in stream.records] == ["2.86", "29.84"]


def test_a_stream_without_ids_is_numbered_and_a_named_column_must_exist() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "datetime": ["2026-04-01T10:00:00Z", "2026-04-01T11:00:00Z"],
            "amount": [10.0, 900.0],
            "is_fraud": [0, 1],
        }
    )
    stream = read_stream(frame, StreamColumns(), now=TODAY)
    assert [r.transaction["transaction_id"] for r in stream.records] == ["row-2", "row-3"]
    with pytest.raises(ValueError, match=r"no column.*amount_usd.*the file has customer_id"):
        read_stream(frame, StreamColumns(amount="amount_usd"), now=TODAY)
    with pytest.raises(ValueError, match=r"no column.*is_anomaly"):
        read_stream(frame.drop(columns="is_fraud"), StreamColumns(), now=TODAY)


def test_a_european_stream_file_reads_with_its_semicolons_code_page_and_decimal_commas(
    tmp_path: Path,
) -> None:
    """As imports read one: before, pandas took the whole header for one column, and a
    decimal comma would have read "-37,80" as 3,780."""
    from services.cli.evaluate import read_csv

    path = tmp_path / "umsaetze.csv"
    path.write_bytes(
        (
            "transaction_id;account_id;timestamp;amount;merchant;is_fraud\n"
            "t1;a;2026-11-02T10:00:00Z;-37,80;Bäckerei Müller;0\n"
            "t2;a;2026-11-03T10:00:00Z;-1.150,00;Hausverwaltung;1\n"
            "t3;a;2026-11-04T10:00:00Z;-4,50;Bäckerei Müller;0\n"
        ).encode("cp1252")
    )
    frame = read_csv(path)
    assert list(frame.columns)[:4] == ["transaction_id", "account_id", "timestamp", "amount"]
    stream = read_stream(frame, StreamColumns(channel=None, label="is_fraud"), now=TODAY)
    bodies = [record.transaction for record in stream.records]
    assert [(b["amount"], b["merchant"]) for b in bodies] == [
        ("37.80", "Bäckerei Müller"),
        ("1150.00", "Hausverwaltung"),
        ("4.50", "Bäckerei Müller"),
    ]
    assert stream.labels.tolist() == [0, 1, 0]
