"""Changes to accepted transactions: the forecaster's ledger rules (pure), and edits, deletions,
revisions and removals through the whole stack."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from schemas import TransactionChange, TransactionEvent
from services.core.consuming import decode_record, split_batch
from services.forecaster.ledger import Ledger

D = Decimal


def event(
    tx: str = "t1", amount: str = "10.00", revision: int = 1, **extra: Any
) -> TransactionEvent:
    return TransactionEvent.model_validate(
        {
            "transaction_id": tx,
            "account_id": "card",
            "timestamp": "2026-03-05T12:00:00+01:00",
            "amount": amount,
            "category": "Dining",
            "revision": revision,
            "user_id": "u",
            "ingested_at": "2026-03-05T11:00:01Z",
            **extra,
        }
    )


def change(kind: str, tx: str = "t1", **changes: Any) -> TransactionChange:
    return TransactionChange(
        kind=kind,  # type: ignore[arg-type]
        change_id=f"c-{kind}-{tx}",
        user_id="u",
        account_id="card",
        transaction_id=tx,
        changes=changes,
        source="api",
        requested_at=datetime(2026, 3, 6, tzinfo=UTC),
    )


def totals(ledger: Ledger) -> dict[str, tuple[Decimal, int]]:
    """Net delta per series, over days."""
    out: dict[str, tuple[Decimal, int]] = {}
    for (_, _, series, _), (spent, _, n) in ledger.deltas.items():
        before = out.get(series, (D(0), 0))
        out[series] = (before[0] + D(spent), before[1] + int(n))
    return {k: v for k, v in out.items() if v != (D(0), 0)}


def test_a_transaction_counts_once_and_a_repeat_changes_nothing() -> None:
    ledger = Ledger({})
    ledger.event(event(), D(1))
    ledger.event(event(), D(1))
    assert totals(ledger) == {"Dining": (D("10.00"), 1)}


def test_a_higher_revision_replaces_an_equal_or_lower_one_changes_nothing() -> None:
    ledger = Ledger({})
    ledger.event(event(amount="10.00"), D(1))
    ledger.event(event(amount="12.50", revision=2), D(1))
    ledger.event(event(amount="99.00", revision=2), D(1))
    ledger.event(event(amount="1.00", revision=1), D(1))
    assert totals(ledger) == {"Dining": (D("12.50"), 1)}


def test_a_removal_takes_it_out_for_good() -> None:
    ledger = Ledger({})
    ledger.event(event(), D(1))
    ledger.change(change("remove"))
    ledger.event(event(amount="50.00", revision=3), D(1))  # a late revision brings nothing back
    assert totals(ledger) == {}
    assert ledger.records[("u", "t1")].state == "removed"


def test_a_removal_before_the_transaction_keeps_it_out() -> None:
    ledger = Ledger({})
    ledger.change(change("remove"))
    ledger.event(event(), D(1))
    assert totals(ledger) == {}


def test_a_category_edit_moves_the_amount_and_outlives_revisions() -> None:
    ledger = Ledger({})
    ledger.event(event(), D(1))
    ledger.change(change("edit", category="Groceries"))
    ledger.event(event(amount="11.00", revision=2), D(1))
    assert totals(ledger) == {"Groceries": (D("11.00"), 1)}
    assert ledger.records[("u", "t1")].user_category


def test_excluding_and_including_again() -> None:
    ledger = Ledger({})
    ledger.event(event(), D(1))
    ledger.change(change("edit", excluded=True))
    assert totals(ledger) == {}
    ledger.event(event(amount="20.00", revision=2), D(1))
    assert totals(ledger) == {}, "a revision of an excluded transaction stays excluded"
    ledger.change(change("edit", excluded=False))
    assert totals(ledger) == {"Dining": (D("20.00"), 1)}


def test_without_a_rate_a_currency_keeps_a_series_of_its_own() -> None:
    ledger = Ledger({})
    ledger.event(event(amount="1000", currency="JPY"), None)
    ledger.change(change("edit", category="Travel"))
    assert totals(ledger) == {"Travel (JPY)": (D("1000"), 1)}


def test_a_batch_keeps_the_highest_revision_of_each_transaction() -> None:
    class Record:
        def __init__(self, offset: int):
            self.topic, self.partition, self.offset = "transactions.v1", 0, offset

    items = [
        event(amount="1.00"),
        event(amount="3.00", revision=3),
        event(amount="2.00", revision=2),
    ]
    items.append(change("remove", tx="t2"))  # type: ignore[arg-type]
    batch = split_batch([Record(i) for i in range(4)], items)  # type: ignore[arg-type]
    assert [d.event.amount for d in batch.deliveries] == [D("3.00")]
    assert [d.event.kind for d in batch.changes] == ["remove"]
    assert [type(d.event).__name__ for d in batch.in_order()] == [
        "TransactionEvent",
        "TransactionChange",
    ]


def test_no_text_inside_a_transaction_makes_it_read_as_a_change() -> None:
    hostile = event(metadata={"event": "transaction.change", "x": '"transaction.change"'})
    assert isinstance(decode_record(hostile.model_dump_json().encode()), TransactionEvent)
    assert isinstance(decode_record(change("remove").model_dump_json().encode()), TransactionChange)


# Through the stack -----------------------------------------------------------------------------


def row(i: int, amount: str = "40.00", **extra: Any) -> dict[str, Any]:
    return {
        "transaction_id": f"chg-{i}",
        "account_id": "card",
        "timestamp": f"2026-04-{1 + i:02d}T12:00:00+02:00",
        "amount": amount,
        "merchant": f"SHOP {i}",
        "category": "Dining",
        "channel": "card",
        **extra,
    }


async def recomputed_mismatches(conn: asyncpg.Connection, user: str) -> list[asyncpg.Record]:
    """Rows where the forecaster's daily spend differs from a recomputation over the stored
    transactions: debits not excluded, under the provided or the person's category."""
    return list(
        await conn.fetch(
            """SELECT * FROM (SELECT * FROM daily_spend WHERE user_id = $1 AND n <> 0) d
               FULL JOIN (
                   SELECT user_id, account_id,
                          CASE WHEN category_source IN ('provided', 'user') THEN category
                               ELSE 'Uncategorized' END AS category,
                          ((ts AT TIME ZONE 'UTC')
                           + make_interval(mins => utc_offset_minutes::int))::date AS day,
                          sum(CASE WHEN direction = 'debit' THEN amount ELSE 0 END) AS spent,
                          count(*) AS n
                   FROM transactions WHERE user_id = $1 AND NOT excluded GROUP BY 1, 2, 3, 4) r
               USING (user_id, account_id, category, day)
               WHERE d.spent IS DISTINCT FROM r.spent OR d.n IS DISTINCT FROM r.n""",
            user,
        )
    )


async def send_changes(client: httpx.AsyncClient, api: str, ingest: str) -> None:
    """chg-0 recategorized with a note and a display name, chg-1 excluded, chg-2 deleted,
    chg-3 revised (and then sent stale), chg-4 removed by the bank; bad changes refused."""
    edit = await client.patch(
        f"{api}/v1/transactions/chg-0",
        json={"category": "Groceries", "note": "party food", "merchant": "Corner shop"},
    )
    assert edit.status_code == 202 and edit.json()["kind"] == "edit", edit.text
    excluded = await client.patch(f"{api}/v1/transactions/chg-1", json={"excluded": True})
    assert excluded.status_code == 202
    assert (await client.delete(f"{api}/v1/transactions/chg-2")).status_code == 202
    bad = await client.patch(f"{api}/v1/transactions/chg-3", json={"category": ""})
    assert bad.status_code == 422 and "category" in bad.text
    assert (await client.patch(f"{api}/v1/transactions/chg-3", json={})).status_code == 422
    nope = await client.patch(f"{api}/v1/transactions/nope", json={"note": "x"})
    assert nope.status_code == 404
    revised = row(3, amount="55.00", revision=2, status="posted")
    assert (await client.post(f"{ingest}/v1/transactions", json=revised)).status_code == 202
    stale = row(3, amount="1.00", revision=1)
    assert (await client.post(f"{ingest}/v1/transactions", json=stale)).status_code == 202
    removal = await client.post(f"{ingest}/v1/transactions", json={"removed": ["chg-4"]})
    assert removal.status_code == 202 and removal.json() == {"accepted": 0, "removed": 1}
    unknown = await client.post(f"{ingest}/v1/transactions", json={"removed": ["never-sent"]})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "removed", 0]


async def check_views(client: httpx.AsyncClient, api: str) -> None:
    """Every view shows the changes, once applied."""
    zero = (await client.get(f"{api}/v1/transactions/chg-0")).json()
    three = (await client.get(f"{api}/v1/transactions/chg-3")).json()
    assert (zero["category_source"], zero["note"], zero["display_merchant"]) == (
        "user",
        "party food",
        "Corner shop",
    )
    assert (D(three["amount"]), three["status"]) == (D("55.00"), "posted")
    items = (await client.get(f"{api}/v1/transactions")).json()["items"]
    assert {t["transaction_id"] for t in items} == {"chg-0", "chg-1", "chg-3", "chg-5"}
    exported = (await client.get(f"{api}/v1/exports/transactions.csv")).text
    assert "chg-2" not in exported and "chg-4" not in exported and "party food" in exported
    summary = (await client.get(f"{api}/v1/insights/summary", params={"month": "2026-04"})).json()
    by_category = {c["category"]: D(c["total"]) for c in summary["categories"]}
    # chg-1 excluded, chg-2 deleted, chg-4 removed; chg-3 revised to 55.00; chg-0 Groceries
    assert by_category == {"Groceries": D("40.00"), "Dining": D("95.00")}
    budget = (await client.get(f"{api}/v1/budgets", params={"month": "2026-04"})).json()
    assert D(budget["budgets"][0]["spent"]) == D("95.00")


@pytest.mark.integration
async def test_edits_deletions_revisions_and_removals_reach_every_view(  # type: ignore[no-untyped-def]
    stack, new_user, migrated_dsn: str
) -> None:
    from services.devstack.stack import service_url
    from tests.polling import poll_until
    from tests.test_pipeline import auth

    user, key = await new_user("changes")
    api, ingest = service_url(stack.settings, "api"), service_url(stack.settings, "ingest")
    rows = [row(i) for i in range(6)]
    async with httpx.AsyncClient(timeout=60, headers=auth(key)) as client:
        posted = await client.post(f"{ingest}/v1/transactions", json={"transactions": rows})
        assert posted.status_code == 202

        async def get(i: int) -> httpx.Response:
            return await client.get(f"{api}/v1/transactions/chg-{i}")

        async def scored() -> bool:
            answers = [await get(i) for i in range(6)]
            return all(a.status_code == 200 and a.json()["score"] for a in answers)

        await poll_until(scored, within_s=60)
        await client.put(f"{api}/v1/budgets/Dining", json={"amount": "1000.00"})
        await send_changes(client, api, ingest)

        async def applied() -> bool:
            zero, three = (await get(0)).json(), (await get(3)).json()
            return (
                zero.get("category") == "Groceries"
                and (await get(1)).json().get("excluded") is True
                and (await get(2)).status_code == 404
                and (await get(4)).status_code == 404
                and three.get("revision") == 2
                and (three.get("score") or {}).get("scored_at") is not None
            )

        await poll_until(applied, within_s=60)
        await check_views(client, api)
        assert (await client.post(f"{ingest}/v1/transactions", json=row(2))).status_code == 202
        await asyncio.sleep(2)
        assert (await get(2)).status_code == 404, "a deleted transaction does not come back"
    await check_aggregates(migrated_dsn, user)


async def check_aggregates(dsn: str, user: str) -> None:
    from tests.polling import poll_until

    conn = await asyncpg.connect(dsn)
    try:

        async def consistent() -> bool:
            return await recomputed_mismatches(conn, user) == []

        await poll_until(consistent, within_s=60)
        # each change is new data for drift and clusters: the category edit, the exclusion, the
        # two removals and the revision
        changed = "SELECT count(*) FROM account_changes WHERE user_id = $1"
        assert await conn.fetchval(changed, user) >= 5
        scores = "SELECT count(*) FROM scores WHERE user_id = $1 AND transaction_id = ANY($2)"
        assert await conn.fetchval(scores, user, ["chg-2", "chg-4"]) == 0
    finally:
        await conn.close()


class Reader:
    """One user's transactions through the query API."""

    def __init__(self, client: httpx.AsyncClient, api: str):
        self.client, self.api = client, api

    async def get(self, transaction_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{self.api}/v1/transactions/{transaction_id}")
        return response.json() if response.status_code == 200 else {}

    async def categories(self, *ids: str) -> list[str | None]:
        return [(await self.get(i)).get("category") for i in ids]


async def check_teaching(reader: Reader, ingest: str) -> None:
    """A correction becomes the merchant's rule: for the earlier ones (asked) and later ones."""
    from tests.polling import poll_until

    client, api = reader.client, reader.api
    edit = {"category": "Coffee", "apply_to_merchant": True}
    assert (await client.patch(f"{api}/v1/transactions/chg-0", json=edit)).status_code == 202
    lone = await client.patch(f"{api}/v1/transactions/chg-0", json={"apply_to_merchant": True})
    assert lone.status_code == 422

    async def taught() -> bool:
        return await reader.categories("chg-0", "chg-1", "chg-2") == ["Coffee"] * 3

    await poll_until(taught, within_s=30)
    sources = [(await reader.get(f"chg-{i}"))["category_source"] for i in range(3)]
    assert sources == ["user", "rule", "rule"]
    later = row(3, amount="5.00", merchant="BLUE BOTTLE COFFEE 042")
    later.pop("category")
    await client.post(f"{ingest}/v1/transactions", json=later)

    async def learned() -> bool:
        return await reader.categories("chg-3") == ["Coffee"]

    await poll_until(learned, within_s=30)
    three = await reader.get("chg-3")
    assert (three["category_source"], three["category_confidence"]) == ("rule", 1.0)


async def check_rename(reader: Reader, ingest: str) -> None:
    """Eating out merged into Dining: transactions, budgets, and what arrives later."""
    from tests.polling import poll_until

    client, api = reader.client, reader.api
    url = f"{api}/v1/categories/rename"
    unknown = await client.post(url, json={"old_name": "Nope", "new_name": "Dining"})
    assert unknown.status_code == 422 and "old_name" in unknown.text
    renamed = await client.post(url, json={"old_name": "Eating out", "new_name": "Dining"})
    assert renamed.status_code == 202, renamed.text
    assert renamed.json() == {
        "old_name": "Eating out",
        "new_name": "Dining",
        "merged": True,
        "accounts": 2,
    }
    budgets = (await client.get(f"{api}/v1/budgets", params={"month": "2026-04"})).json()
    assert {b["category"]: D(b["budget"]) for b in budgets["budgets"]} == {"Dining": D("150.00")}
    late = row(4, amount="12.00", category="Eating out", account_id="checking")
    await client.post(f"{ingest}/v1/transactions", json=late)

    async def renamed_everywhere() -> bool:
        return await reader.categories("chg-4", "chg-5") == ["Dining"] * 2

    await poll_until(renamed_everywhere, within_s=30)


@pytest.mark.integration
async def test_corrections_teach_and_categories_rename_and_merge(  # type: ignore[no-untyped-def]
    stack, new_user, migrated_dsn: str
) -> None:
    from services.devstack.stack import service_url
    from tests.polling import poll_until
    from tests.test_pipeline import auth

    user, key = await new_user("teach")
    api, ingest = service_url(stack.settings, "api"), service_url(stack.settings, "ingest")
    coffee = [row(i, amount="4.50", merchant="BLUE BOTTLE COFFEE 042") for i in range(3)]
    for tx in coffee:
        tx.pop("category")
    dinner = row(5, amount="30.00", category="Eating out", account_id="checking")
    async with httpx.AsyncClient(timeout=60, headers=auth(key)) as client:
        posted = await client.post(
            f"{ingest}/v1/transactions", json={"transactions": [*coffee, dinner]}
        )
        assert posted.status_code == 202
        await client.put(f"{api}/v1/budgets/Eating out", json={"amount": "100.00"})
        await client.put(f"{api}/v1/budgets/Dining", json={"amount": "50.00"})
        reader = Reader(client, api)

        async def stored() -> bool:
            return all([await reader.get(f"chg-{i}") for i in (0, 1, 2, 5)])

        await poll_until(stored, within_s=60)
        await check_teaching(reader, ingest)
        await check_rename(reader, ingest)

    conn = await asyncpg.connect(migrated_dsn)
    try:

        async def consistent() -> bool:
            return await recomputed_mismatches(conn, user) == []

        await poll_until(consistent, within_s=60)
        old = "SELECT count(*) FROM daily_spend WHERE user_id = $1 AND category = $2 AND n <> 0"
        assert await conn.fetchval(old, user, "Eating out") == 0
        dining = "SELECT sum(spent) FROM daily_spend WHERE user_id = $1 AND category = 'Dining'"
        assert await conn.fetchval(dining, user) == D("42.00")
    finally:
        await conn.close()
