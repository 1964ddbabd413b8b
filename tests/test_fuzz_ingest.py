"""Generated hostile input through the three doors of the real ingest: every request is refused
with a 4xx or accepted, and everything accepted is stored: none of it is lost or dead-lettered.

Hypothesis strategies for the transaction, the signed webhook and the CSV import, mixing valid
values with hostile ones (NUL and other control characters, far dates, exponents, deep JSON,
wrong types, extra fields). ``SPENDSTREAM_FUZZ_EXAMPLES`` sets how many requests: a few hundred
in ``make test``, 10,000 with ``make fuzz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import string
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core.auth import create_key
from services.devstack.stack import Stack, isolated_settings, service_url
from services.ingest.imports import CsvMapping, ImportErrors, parse_export
from services.ingest.signing import sign
from tests.polling import poll_until

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("SPENDSTREAM_FUZZ_EXAMPLES", "300"))
INSTALLATION_SECRET = "test-installation-secret-new"

hostile_text = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", " ", "\x00", "a\x00b", "💸" * 50, "x" * 600, "<script>", "' OR 1=1 --", "\\u0000"]
)
json_scalar = st.none() | st.booleans() | st.integers() | st.floats() | hostile_text
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=12,
)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
hostile_offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)
recent = st.datetimes(datetime(2020, 1, 1), datetime(2026, 11, 30), timezones=offsets)
# Most requests are valid, so that what is accepted gets checked too; half of the transactions
# carry one hostile field, so every kind of trouble meets every door.
valid = {
    "transaction_id": st.text(
        string.ascii_letters + string.digits + "-_:", min_size=1, max_size=64
    ),
    "account_id": st.sampled_from(["card", "checking", "joint-savings"]),
    "timestamp": recent.map(datetime.isoformat),
    "amount": st.decimals(min_value="0.01", max_value=10**6, places=2).map(str),
    "merchant": st.text(string.printable, max_size=60),
    "description": st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=80),
    "category": st.sampled_from(["Groceries", "Dining", "Rent", "Café", "食料品"]),
    "direction": st.sampled_from(["debit", "credit"]),
    "currency": st.sampled_from(["USD", "EUR", "JPY", "eur"]),
    "channel": st.sampled_from(["card", "online", "transfer", "atm", "other"]),
    "country": st.sampled_from(["US", "DE", "jp"]),
    "metadata": st.dictionaries(
        st.text(string.ascii_letters, max_size=8),
        st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(string.printable),
        max_size=3,
    ),
}
hostile = {
    "transaction_id": hostile_text | st.text(min_size=65, max_size=70),
    "account_id": hostile_text,
    "timestamp": st.one_of(
        st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=hostile_offsets).map(
            datetime.isoformat
        ),
        st.sampled_from(["2026-06-01T10:00:00", "2026-02-30T10:00:00Z", "yesterday", ""]),
    ),
    "amount": st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.sampled_from(["1e999999", "-1e999999999", "0", "0.001", "12,50", " 5 "]),
        st.integers().map(str),
        st.floats(),
    ),
    "merchant": hostile_text,
    "description": hostile_text,
    "category": hostile_text,
    "direction": hostile_text,
    "currency": hostile_text,
    "channel": hostile_text,
    "country": hostile_text,
    "metadata": json_value,
    "unexpected": json_value,
}
REQUIRED = ("transaction_id", "account_id", "timestamp", "amount")


@st.composite
def transactions(draw: st.DrawFn) -> dict[str, Any]:
    """A valid transaction, half the time with one field turned hostile."""
    body = {name: draw(valid[name]) for name in REQUIRED}
    for name in sorted(set(valid) - set(REQUIRED)):
        if draw(st.booleans()):
            body[name] = draw(valid[name])
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(hostile)))
        body[name] = draw(hostile[name])
    return body


valid_rows = st.tuples(
    st.dates(datetime(2020, 1, 1).date(), datetime(2026, 11, 30).date()).map(str),
    st.text(string.ascii_letters + " ", max_size=30),
    st.decimals(min_value=-5000, max_value=5000, places=2).map(str),
).map(list)
hostile_rows = st.lists(
    hostile_text | hostile["amount"].map(str) | hostile["timestamp"], min_size=0, max_size=5
)
csv_files = st.lists(st.one_of(valid_rows, valid_rows, hostile_rows), max_size=8).map(
    lambda rows: (
        "date,description,amount\n"
        + "\n".join(",".join(json.dumps(cell) for cell in row) for row in rows)
    )
)
requests = st.one_of(
    st.tuples(st.just("post"), st.lists(transactions(), min_size=1, max_size=4)),
    st.tuples(st.just("webhook"), st.lists(transactions(), min_size=1, max_size=4)),
    st.tuples(st.just("import"), csv_files),
)


def as_json(value: object) -> bytes:
    """Python's own encoder: it writes what orjson refuses (huge integers, NaN), as a careless
    client would."""
    return json.dumps(value).encode("utf-8", "surrogatepass")


def send(
    client: httpx.Client, ingest: str, user: str, key: str, request: tuple[str, Any]
) -> tuple[int, set[str]]:
    """Sends one generated request; returns its status and the ids it got accepted."""
    door, payload = request
    if door == "import":
        response = client.post(
            f"{ingest}/v1/imports",
            files={"file": ("fuzz.csv", payload.encode("utf-8", "surrogatepass"), "text/csv")},
            data={"account_id": "imported"},
            headers={"Authorization": f"Bearer {key}"},
        )
    elif door == "webhook":
        body = as_json({"user_id": user, "transactions": payload})
        response = client.post(
            f"{ingest}/v1/webhooks/bank",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Spendstream-Signature": sign(INSTALLATION_SECRET, body),
            },
        )
    else:
        response = client.post(
            f"{ingest}/v1/transactions",
            content=as_json({"transactions": payload}),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
    assert response.status_code < 500, (door, payload, response.text[:500])
    if response.status_code != 202:
        return response.status_code, set()
    if door != "import":
        return 202, {tx["transaction_id"].strip() for tx in payload}
    try:  # the ids ingest gave the rows: the same parser, here
        parsed = parse_export(
            payload, filename="fuzz.csv", mapping=CsvMapping(), account_id="imported"
        )
    except ImportErrors:
        raise AssertionError(f"202 for a file the parser refuses: {payload!r}") from None
    return 202, {tx.transaction_id for tx in parsed}


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: what the fuzzers get accepted is wild (amounts up to a million, any
    hour, any offset), and must not become what the shared stack's anomaly model calls normal."""
    settings = isolated_settings(
        tmp_path_factory.mktemp("fuzz"),
        webhook_secret=INSTALLATION_SECRET,
        ingest_rate_limit="100000/second",
    )
    stack = Stack(settings, services=("ingest", "scorer"), durable=False)
    stack.start()
    yield stack
    stack.stop()


async def test_generated_requests_are_refused_or_stored(fuzz_stack: Stack) -> None:
    stack = fuzz_stack
    user = "fuzzed"
    conn = await asyncpg.connect(stack.settings.database.require_url())
    try:
        key = (await create_key(conn, user)).secret
    finally:
        await conn.close()
    ingest = service_url(stack.settings, "ingest")
    accepted: set[str] = set()
    statuses: Counter[int] = Counter()

    def run() -> None:
        with httpx.Client(timeout=60) as client:

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(request=requests)
            def one(request: tuple[str, Any]) -> None:
                status, got = send(client, ingest, user, key, request)
                statuses[status] += 1
                accepted.update(got)

            one()

    await asyncio.to_thread(run)
    dsn = stack.settings.database.require_url()
    stored: set[str] = set()

    async def all_stored() -> bool:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT transaction_id FROM transactions WHERE user_id = $1", user
            )
        finally:
            await conn.close()
        stored.clear()
        stored.update(r["transaction_id"] for r in rows)
        return accepted <= stored

    with contextlib.suppress(AssertionError):  # the counts below say what is missing
        await poll_until(all_stored, within_s=120, every_s=1)
    print(  # the counts a long `make fuzz` run reports
        f"\nfuzz: {sum(statuses.values())} requests, by status {dict(sorted(statuses.items()))}, "
        f"{len(accepted)} transactions accepted, 0 server errors, "
        f"{len(accepted - stored)} accepted and not stored"
    )
    assert accepted - stored == set(), "accepted, then never stored"
    assert accepted, "the strategies also make valid requests"
