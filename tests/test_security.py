"""Signed webhooks, imports, isolation, bad input and secrets, through the running services."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from services.devstack.stack import Stack, service_url
from services.ingest.signing import sign
from services.ingest.store import rotate_webhook_secret
from tests.polling import poll_until

pytestmark = pytest.mark.integration
NewUser = Callable[[str], Awaitable[tuple[str, str]]]
INSTALLATION_SECRET = "test-installation-secret-new"


def tx(transaction_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "account_id": "hooked",
        "amount": "19.99",
        "timestamp": "2026-06-01T10:00:00+00:00",
        "merchant": "Corner Shop",
        **extra,
    }


async def visible(
    client: httpx.AsyncClient, api: str, key: str, transaction_id: str, within: float = 30
) -> bool:
    async def found() -> bool:
        r = await client.get(
            f"{api}/v1/transactions/{transaction_id}", headers={"Authorization": f"Bearer {key}"}
        )
        return r.status_code == 200

    return bool(await poll_until(found, within_s=within, every_s=0.5))


async def test_webhook_signatures(stack: Stack, new_user: NewUser, migrated_dsn: str) -> None:
    ingest, api = service_url(stack.settings, "ingest"), service_url(stack.settings, "api")
    user, key = await new_user("hooked")
    hook = f"{ingest}/v1/webhooks/bank"

    def body(transaction_id: str) -> bytes:
        return orjson.dumps({"user_id": user, "transactions": [tx(transaction_id)]})

    async with httpx.AsyncClient(timeout=20) as client:

        async def post(
            raw: bytes, signature: str | None, signer: str | None = None
        ) -> httpx.Response:
            headers = {"Content-Type": "application/json"}
            if signature is not None:
                headers["X-Spendstream-Signature"] = signature
            if signer is not None:
                headers["X-Spendstream-User"] = signer
            return await client.post(hook, content=raw, headers=headers)

        refused = {
            "wrong secret": await post(body("wh-wrong"), sign("not-the-secret", body("wh-wrong"))),
            "tampered body": await post(
                body("wh-tampered"), sign(INSTALLATION_SECRET, body("wh-original"))
            ),
            "stale timestamp": await post(
                body("wh-stale"),
                sign(INSTALLATION_SECRET, body("wh-stale"), int(time.time()) - 301),
            ),
            "malformed header": await post(body("wh-malformed"), "v1=deadbeef"),
            "no header": await post(body("wh-none"), None),
        }
        for reason, response in refused.items():
            assert response.status_code == 401, reason
        signed_once = sign(INSTALLATION_SECRET, body("wh-good"))
        good = await post(body("wh-good"), signed_once)
        assert (good.status_code, good.json()) == (202, {"accepted": 1})
        replay = await post(body("wh-good"), signed_once)
        assert replay.status_code == 409, "a captured delivery cannot be sent again"
        unknown_user = orjson.dumps({"user_id": "not-yet", "transactions": [tx("wh-later")]})
        signed_unknown = sign(INSTALLATION_SECRET, unknown_user)
        assert (await post(unknown_user, signed_unknown)).status_code == 422
        assert (await post(unknown_user, signed_unknown)).status_code == 422, (
            "a delivery that was not accepted may be retried as it was"
        )
        old = await post(
            body("wh-old-secret"), sign("test-installation-secret-old", body("wh-old-secret"))
        )
        assert old.status_code == 202, "both installation secrets are valid while rotating"
        assert await visible(client, api, key, "wh-good")
        for refused_id in (
            "wh-wrong",
            "wh-tampered",
            "wh-original",
            "wh-stale",
            "wh-malformed",
            "wh-none",
        ):
            r = await client.get(
                f"{api}/v1/transactions/{refused_id}", headers={"Authorization": f"Bearer {key}"}
            )
            assert r.status_code == 404, f"{refused_id} was not published"

        conn = await asyncpg.connect(migrated_dsn)
        try:
            first = await rotate_webhook_secret(conn, user)
            second = await rotate_webhook_secret(conn, user)
            for secret, tid in ((first, "wh-user-1"), (second, "wh-user-2")):
                assert (await post(body(tid), sign(secret, body(tid)), user)).status_code == 202
            unnamed = await post(body("wh-unnamed"), sign(first, body("wh-unnamed")))
            assert unnamed.status_code == 401, "a user's secret needs the header naming them"
            other, _ = await new_user("other-hooked")
            for_other = orjson.dumps({"user_id": other, "transactions": [tx("wh-for-other")]})
            stolen = await post(for_other, sign(first, for_other), user)
            assert stolen.status_code == 422, "a user's secret signs for that user only"
            await rotate_webhook_secret(conn, user)
            assert (
                await post(body("wh-revoked"), sign(first, body("wh-revoked")), user)
            ).status_code == 401
        finally:
            await conn.close()
        unknown = orjson.dumps({"user_id": "nobody-here", "transactions": [tx("wh-x")]})
        response = await post(unknown, sign(INSTALLATION_SECRET, unknown))
        assert response.status_code == 422 and response.json()["detail"][0]["field"] == "user_id"


async def test_imports_are_idempotent(stack: Stack, new_user: NewUser, tmp_path: Path) -> None:
    ingest, api = service_url(stack.settings, "ingest"), service_url(stack.settings, "api")
    _, key = await new_user("importer")
    csv_text = (
        "date,description,amount\n2026-05-01,BAKERY,-3.20\n2026-05-01,BAKERY,-3.20\n"
        "2026-05-02,SALARY,900.00\n"
    )
    async with httpx.AsyncClient(timeout=20) as client:
        for _ in range(2):
            response = await client.post(
                f"{ingest}/v1/imports",
                files={"file": ("export.csv", csv_text, "text/csv")},
                data={"account_id": "savings"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert (response.status_code, response.json()) == (202, {"accepted": 3})
        bad = await client.post(
            f"{ingest}/v1/imports",
            files={"file": ("bad.csv", "date,description,amount\nsoon,X,-1\n", "text/csv")},
            data={"account_id": "savings"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["row"] == 2 and bad.json()["detail"][0]["column"] == "date"

        async def three() -> bool:
            page = await client.get(
                f"{api}/v1/transactions",
                params={"account_id": "savings"},
                headers={"Authorization": f"Bearer {key}"},
            )
            return len(page.json()["items"]) == 3

        await poll_until(three, within_s=30, every_s=0.5, what="the import was stored")
        await asyncio.sleep(1)
        assert await three(), "re-importing created no duplicates"

    path = tmp_path / "export.csv"
    path.write_text(csv_text)
    done = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli.main",
        "import",
        str(path),
        "--account",
        "savings",
        "--api-key",
        key,
        env={**os.environ, "SPENDSTREAM_INGEST_PORT": str(stack.settings.http.ingest_port)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await done.communicate()
    assert done.returncode == 0 and b"imported 3" in out


async def test_a_european_bank_export_is_stored_as_the_bank_meant_it(
    stack: Stack, new_user: NewUser
) -> None:
    """Windows-1252 bytes, semicolons, decimal commas, German headers: through the import form
    as a person's browser sends the file, and stored with the amounts and names it holds."""
    ingest, api = service_url(stack.settings, "ingest"), service_url(stack.settings, "api")
    _, key = await new_user("giro")
    export = (
        "Buchungstag;Beguenstigter/Zahlungspflichtiger;Verwendungszweck;Betrag;Waehrung\n"
        "28.11.26;Bäckerei Müller;Brötchen;-4,50;EUR\n"
        "01.11.26;Hausverwaltung Schmidt;Miete;-1.150,00;EUR\n"
    ).encode("cp1252")
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=20) as client:
        response = await client.post(
            f"{ingest}/v1/imports",
            files={"file": ("Umsaetze.csv", export, "text/csv")},
            data={"account_id": "giro"},
            headers=auth,
        )
        assert (response.status_code, response.json()) == (202, {"accepted": 2})

        async def stored() -> list[tuple[str, str, str]] | None:
            page = await client.get(
                f"{api}/v1/transactions", params={"account_id": "giro"}, headers=auth
            )
            items = page.json()["items"]
            rows = sorted((i["merchant"], i["amount"], i["currency"]) for i in items)
            return rows if len(rows) == 2 else None

        rows = await poll_until(stored, within_s=30, every_s=0.5, what="the import was stored")
    assert rows == [
        ("Bäckerei Müller", "4.50", "EUR"),
        ("Hausverwaltung Schmidt", "1150.00", "EUR"),
    ]


async def test_bad_input_gets_a_clear_4xx(stack: Stack, new_user: NewUser) -> None:
    ingest = service_url(stack.settings, "ingest")
    _, key = await new_user("careless")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=60) as client:
        cases = {
            "amount": tx("b1", amount="1.234"),
            "timestamp": tx("b2", timestamp="2026-06-01T10:00:00"),
        }
        for field, body in cases.items():
            r = await client.post(
                f"{ingest}/v1/transactions", content=orjson.dumps(body), headers=headers
            )
            assert r.status_code == 422 and r.json()["detail"][0]["field"] == field
        for raw in (
            b'{"transaction_id":"b3","account_id":"a","timestamp":"2026-06-01T10:00:00Z","amount":NaN}',
            b'{"transaction_id":"b3","account_id":"a","timestamp":"2026-06-01T10:00:00Z","amount":"Infinity"}',
        ):
            r = await client.post(f"{ingest}/v1/transactions", content=raw, headers=headers)
            assert r.status_code == 422
        many = orjson.dumps({"transactions": [tx(f"m{i}") for i in range(10_001)]})
        r = await client.post(f"{ingest}/v1/transactions", content=many, headers=headers)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "transactions"
        huge = b'{"transactions": [' + b" " * (stack.settings.ingest.max_body_bytes + 10) + b"]}"
        r = await client.post(f"{ingest}/v1/transactions", content=huge, headers=headers)
        assert r.status_code == 413
        assert "Traceback" not in r.text
        # Before authentication and before any parsing or spooling: no key at all here.
        r = await client.post(
            f"{ingest}/v1/imports",
            files={"file": ("big.csv", b"0" * (stack.settings.ingest.max_body_bytes + 10))},
        )
        assert r.status_code == 413
        api = service_url(stack.settings, "api")
        feedback = b'{"label": "fraud", "pad": "' + b" " * 100_000 + b'"}'
        r = await client.post(f"{api}/v1/anomalies/x/feedback", content=feedback)
        assert r.status_code == 413, "the query API caps every body too, before auth"


UNSTORABLE = {
    # field named in the 422: a body ingest used to accept (202) and then lose or choke on
    "far future": ("timestamp", {"timestamp": "9999-12-31T12:00:00+00:00"}),
    "far past": ("timestamp", {"timestamp": "0001-01-01T00:30:00+01:00"}),
    "before 1970": ("timestamp", {"timestamp": "1969-07-20T20:17:00+00:00"}),
    "deep metadata": ("metadata", {"metadata": {"x": [[[[[[[[[[[1]]]]]]]]]]]}}),
    "NUL in merchant": ("merchant", {"merchant": "CORNER\u0000SHOP"}),
    "NUL in metadata": ("metadata", {"metadata": {"note": "\u0000"}}),
}


def deeply_nested(levels: int) -> bytes:
    """A transaction whose metadata nests ``levels`` deep, as raw JSON."""
    return (
        b'{"transaction_id":"deep","account_id":"a","timestamp":"2026-06-01T10:00:00Z",'
        b'"amount":"1.00","metadata":' + b'{"x":' * levels + b"1" + b"}" * levels + b"}"
    )


async def test_what_could_not_be_stored_is_refused_at_every_door(
    stack: Stack, new_user: NewUser
) -> None:
    """Each of these was once answered 202 and then dead-lettered or broke a shared job."""
    ingest, api = service_url(stack.settings, "ingest"), service_url(stack.settings, "api")
    user, key = await new_user("hostile")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=30) as client:
        for case, (field, extra) in UNSTORABLE.items():
            body = tx(f"bad-{len(case)}", **extra)
            r = await client.post(f"{ingest}/v1/transactions", json=body, headers=headers)
            assert r.status_code == 422, (case, r.text)
            assert r.json()["detail"][0]["field"] == field, case
            batch = {"transactions": [tx("fine-1"), body]}
            r = await client.post(f"{ingest}/v1/transactions", json=batch, headers=headers)
            assert r.status_code == 422, case
            assert r.json()["detail"][0]["loc"][-1] == field, case
            hooked = orjson.dumps({"user_id": user, "transactions": [body]})
            r = await client.post(
                f"{ingest}/v1/webhooks/bank",
                content=hooked,
                headers={
                    "Content-Type": "application/json",
                    "X-Spendstream-Signature": sign(INSTALLATION_SECRET, hooked),
                },
            )
            assert r.status_code == 422 and field in r.text, (case, r.text)
        for levels in (9, 250, 5_000):
            r = await client.post(
                f"{ingest}/v1/transactions", content=deeply_nested(levels), headers=headers
            )
            assert r.status_code == 422, (levels, r.text[:200])
        csv_text = "date,description,amount\n9999-12-31,FAR AWAY,-5.00\n"
        r = await client.post(
            f"{ingest}/v1/imports",
            files={"file": ("future.csv", csv_text, "text/csv")},
            data={"account_id": "savings"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 422 and "timestamp" in r.text, r.text
        listed = await client.get(f"{api}/v1/transactions", headers=headers)
        assert listed.json()["items"] == [], "nothing of it was published"


async def test_isolation_matrix(stack: Stack, new_user: NewUser, migrated_dsn: str) -> None:
    """User B sees nothing of user A's, on every read endpoint and every id."""
    api = service_url(stack.settings, "api")
    conn = await asyncpg.connect(migrated_dsn)
    try:
        owner, ids = await conn.fetchrow(
            """SELECT user_id, array_agg(transaction_id) AS ids FROM transactions
               GROUP BY user_id ORDER BY count(*) DESC LIMIT 1"""
        )
        accounts = [
            r["account_id"]
            for r in await conn.fetch(
                "SELECT DISTINCT account_id FROM transactions WHERE user_id = $1", owner
            )
        ]
        await conn.execute(
            """INSERT INTO budgets (user_id, category, amount) VALUES ($1, 'Isolated', 123)
               ON CONFLICT DO NOTHING""",
            owner,
        )
    finally:
        await conn.close()
    _, key_b = await new_user("outsider")
    b = {"Authorization": f"Bearer {key_b}"}
    async with httpx.AsyncClient(timeout=30) as client:
        for transaction_id in ids[:200]:
            for path in (f"/v1/transactions/{transaction_id}",):
                assert (await client.get(f"{api}{path}", headers=b)).status_code == 404
        for transaction_id in ids[:20]:  # changes go through the broker: fewer, same answer
            path = f"{api}/v1/transactions/{transaction_id}"
            r = await client.patch(path, json={"note": "mine now"}, headers=b)
            assert r.status_code == 404, "another user's transaction cannot be edited"
            assert (await client.delete(path, headers=b)).status_code == 404
            r = await client.post(
                f"{api}/v1/anomalies/{transaction_id}/feedback", json={"label": "fraud"}, headers=b
            )
            assert r.status_code == 404
        for account in accounts:
            for path in ("/v1/transactions", "/v1/anomalies"):
                r = await client.get(f"{api}{path}", params={"account_id": account}, headers=b)
                assert r.json()["items"] == []
            assert (
                await client.get(f"{api}/v1/drift", params={"account_id": account}, headers=b)
            ).json()["series"] == []
            assert (
                await client.get(f"{api}/v1/forecasts", params={"account_id": account}, headers=b)
            ).json()["series"] == []
        assert (await client.get(f"{api}/v1/categories/clusters", headers=b)).json()[
            "clusters"
        ] == []
        assert (await client.get(f"{api}/v1/accounts", headers=b)).json() == []
        summary = (
            await client.get(f"{api}/v1/insights/summary", params={"month": "2026-06"}, headers=b)
        ).json()
        assert (
            summary["categories"] == [] and summary["anomalies"] == 0 and summary["recurring"] == []
        )
        for name in ("trend", "budget"):
            chart = (await client.get(f"{api}/v1/charts/{name}.json", headers=b)).json()
            assert all(not rows for rows in chart.get("datasets", {}).values()), name
        budgets = (await client.get(f"{api}/v1/budgets", headers=b)).json()
        assert budgets["budgets"] == [] and summary["budgets"] == []
        r = await client.delete(f"{api}/v1/budgets/Isolated", headers=b)
        assert r.status_code == 404, "another user's budget cannot be removed"
        r = await client.post(
            f"{api}/v1/categories/rename",
            json={"old_name": "Isolated", "new_name": "Taken"},
            headers=b,
        )
        assert r.status_code == 422, "another user's category cannot be renamed"
        exported = await client.get(f"{api}/v1/exports/transactions.csv", headers=b)
        assert exported.text.count("\n") == 1, "an export holds the caller's rows only"
        assert (await client.get(f"{api}/v1/preferences", headers=b)).json() == {
            "base_currency": "USD"
        }


def test_secrets_never_reach_the_logs(stack: Stack) -> None:
    logs = "".join(
        p.read_text(errors="replace") for p in (stack.settings.data_dir / "logs").glob("*.log")
    )
    assert INSTALLATION_SECRET not in logs and "test-installation-secret-old" not in logs
    assert "ss_" not in logs.replace("process_", "")
