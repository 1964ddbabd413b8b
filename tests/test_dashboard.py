"""The dashboard in headless Chromium (Debian's package, via Playwright) over the real stack."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.demo.generator import DemoRecord, generate
from services.demo.loader import post_records
from services.devstack.stack import Stack, service_url
from tests.browser import launch, needs_chromium, sign_in
from tests.polling import poll_until

pytestmark = pytest.mark.integration
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"


@needs_chromium
async def test_dashboard_renders_charts_and_records_feedback(stack: Stack, new_user) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import async_playwright

    user, key = await new_user("demo-browser")
    records = [
        r
        for r in generate(users=1, months=10, seed=17, end=date(2026, 10, 1))
        if r.user_id == "demo-0001"
    ]
    records = [type(r)(user, r.transaction, r.anomaly) for r in records]
    api = service_url(stack.settings, "api")
    await post_records(records, service_url(stack.settings, "ingest"), {user: key})
    async with httpx.AsyncClient(timeout=30) as client:

        async def anomalies() -> list[Any]:
            page = await client.get(
                f"{api}/v1/anomalies", headers={"Authorization": f"Bearer {key}"}
            )
            return list(page.json()["items"])

        await poll_until(anomalies, within_s=90, every_s=1, what="demo anomalies were scored")

    OUTPUT.mkdir(exist_ok=True)
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        page = await browser.new_page(viewport={"width": 1400, "height": 1800})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(api) else None)
        response = await page.goto(f"{api}/")
        assert response is not None
        policy = (await response.all_headers())["content-security-policy"]
        assert "script-src 'self';" in policy and "unsafe" not in policy.split("style-src")[0], (
            "no inline script and no eval: the charts render under this policy, checked below"
        )
        await sign_in(page, key)
        for chart in ("trend", "heatmap", "anomalies", "forecast", "drift", "categories"):
            assert await page.locator(f"#chart-{chart} svg").count() >= 1, f"{chart} rendered"
        first = page.locator("#anomalies li").first
        transaction_id = await first.get_attribute("data-id")
        await first.locator("button.fraud").click()
        await page.wait_for_function(
            "el => el.textContent.includes('marked fraud')",
            arg=await first.locator(".verdict").element_handle(),
        )
        await page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)
        stored_key = await page.evaluate("localStorage.getItem('spendstream.key')")
        await browser.close()

    assert stored_key == key, "the key is kept in the browser"
    assert errors == [], f"console errors: {errors}"
    assert outside == [], f"requests outside the API: {outside}"
    async with httpx.AsyncClient(timeout=10) as client:
        listed = await client.get(
            f"{api}/v1/anomalies", params={"limit": 500}, headers={"Authorization": f"Bearer {key}"}
        )
        verdicts = {a["transaction_id"]: a["feedback"] for a in listed.json()["items"]}
        assert verdicts[transaction_id] == "fraud", "the click was stored through the API"


@needs_chromium
@pytest.mark.parametrize("browser_timezone", ["Pacific/Auckland", "America/Los_Angeles"])
async def test_month_picker_lists_local_months_in_any_browser_timezone(  # type: ignore[no-untyped-def]
    stack: Stack, new_user, browser_timezone: str
) -> None:
    """The picker offers the months the summary counts (each transaction's local month), however
    far the browser's own timezone is from UTC, across a year boundary."""
    from playwright.async_api import async_playwright

    from tests.test_dates import BOUNDARY_ROWS, boundary_transactions

    user, key = await new_user("picker")
    rows = boundary_transactions()
    await post_records(
        [DemoRecord(user, tx) for tx in rows], service_url(stack.settings, "ingest"), {user: key}
    )
    api = service_url(stack.settings, "api")
    async with httpx.AsyncClient(timeout=30) as client:

        async def all_listed() -> bool:
            listed = await client.get(
                f"{api}/v1/transactions", headers={"Authorization": f"Bearer {key}"}
            )
            return len(listed.json()["items"]) == len(BOUNDARY_ROWS)

        await poll_until(all_listed, within_s=60, every_s=0.5)
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        context = await browser.new_context(timezone_id=browser_timezone)
        page = await context.new_page()
        await page.goto(f"{api}/")
        await sign_in(page, key)
        months = await page.locator("#month option").evaluate_all(
            "options => options.map((o) => o.value)"
        )
        await browser.close()
    assert months == ["2026-01", "2025-12", "2025-11"]


@needs_chromium
async def test_a_new_user_sees_what_each_section_will_show_and_when(  # type: ignore[no-untyped-def]
    stack: Stack, new_user
) -> None:
    from playwright.async_api import async_playwright

    _, key = await new_user("empty")
    api = service_url(stack.settings, "api")
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        page = await browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{api}/")
        await sign_in(page, key)
        texts = {
            section: await page.locator(f"#{section} .empty").inner_text()
            for section in (
                "anomalies",
                "categories",
                "recurring",
                "income",
                "duplicates",
                "drift",
                "clusters",
                "forecasts",
                "budgets",
            )
        }
        cards = await page.locator("#cards").inner_text()
        await browser.close()
    assert errors == []
    assert "paid 3 times at a regular interval" in texts["recurring"]
    assert "once you have 3 distinct ones" in texts["clusters"]
    assert "60 days of history, within a minute" in texts["forecasts"]
    assert "once a week holds 30 transactions" in texts["drift"]
    assert "spendstream import FILE" in cards
    assert "alert at 80% and 100%" in texts["budgets"]
    assert all(texts.values()), texts


@needs_chromium
async def test_budgets_are_set_edited_and_removed_and_transactions_download(  # type: ignore[no-untyped-def]
    stack: Stack, new_user
) -> None:
    from playwright.async_api import async_playwright

    from tests.test_budgets import purchase

    user, key = await new_user("budget-browser")
    rows = [purchase(i, 2 + i, "45.00", "Dining") for i in range(8)]  # 360.00 in March 2026
    await post_records(
        [DemoRecord(user, tx) for tx in rows], service_url(stack.settings, "ingest"), {user: key}
    )
    api = service_url(stack.settings, "api")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:

        async def all_listed() -> bool:
            listed = await client.get(f"{api}/v1/transactions")
            return len(listed.json()["items"]) == len(rows)

        await poll_until(all_listed, within_s=60, every_s=0.5)
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        page = await browser.new_page(accept_downloads=True)
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{api}/")
        await sign_in(page, key)
        assert await page.locator("#month").input_value() == "2026-03"

        await page.fill("#budget-category", "Dining")
        await page.fill("#budget-amount", "300")
        await page.click("#budget-form button[type=submit]")
        row = page.locator('#budgets tr[data-category="Dining"]')
        await row.wait_for()
        assert await row.get_attribute("data-status") == "over"
        assert await page.locator("#chart-budget svg").count() >= 1

        await row.locator("input").fill("450.00")
        await row.locator("input").dispatch_event("change")
        await page.wait_for_selector('#budgets tr[data-category="Dining"][data-status="on_track"]')

        await page.fill("#budget-category", "Dining")
        await page.fill("#budget-amount", "-5")
        await page.click("#budget-form button[type=submit]")
        assert await page.locator("#budgets tr[data-category]").count() == 1, "refused in the form"

        async with page.expect_download() as download_info:
            await page.click("#export-csv")
        download = await download_info.value
        exported = await asyncio.to_thread(Path(await download.path()).read_text)
        async with page.expect_download() as download_info:
            await page.click("#export-xlsx")
        workbook = await asyncio.to_thread(
            Path(await (await download_info.value).path()).read_bytes
        )

        await row.locator("button").click()
        await page.wait_for_selector("#budgets .empty")
        await browser.close()
    assert errors == []
    assert exported.splitlines()[0].startswith("transaction_id,account_id,timestamp,amount")
    assert len(exported.splitlines()) == len(rows) + 1
    assert workbook.startswith(b"PK"), "an xlsx is a zip"
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        left = (await client.get(f"{api}/v1/budgets", params={"month": "2026-03"})).json()
    assert left["budgets"] == [], "the removal went through the API"


async def add_edit_and_delete_in_the_browser(api: str, key: str) -> list[str]:
    """Adds FARMERS MARKET by hand, recategorizes budget-0 inline, deletes budget-1 and undoes
    it, deletes budget-2; returns the page's errors."""
    from playwright.async_api import async_playwright

    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        page = await browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{api}/")
        await sign_in(page, key)

        await page.fill("#add-date", "2026-03-20")
        await page.fill("#add-merchant", "FARMERS MARKET")
        await page.fill("#add-amount", "23.40")
        await page.fill("#add-category", "Groceries")
        await page.fill("#add-account", "cash")
        await page.click("#add-form button[type=submit]")
        added = page.locator("#recent tr", has_text="FARMERS MARKET")
        await added.wait_for(timeout=30_000)

        first = page.locator('#recent tr[data-id="budget-0"]')
        await first.locator("input").fill("Takeaway")
        await first.locator("input").dispatch_event("change")
        await page.wait_for_function(
            "el => el.dataset.saved === 'Takeaway'",
            arg=await first.locator("input").element_handle(),
        )

        second = page.locator('#recent tr[data-id="budget-1"]')
        await second.locator("button").click()
        assert await second.is_hidden()
        await page.click("#undo-button")
        assert await second.is_visible(), "undo puts it back at once"
        await page.wait_for_timeout(7_000)
        third = page.locator('#recent tr[data-id="budget-2"]')
        await third.locator("button").click()
        await page.wait_for_selector("#undo", state="hidden", timeout=15_000)
        await browser.close()
    return errors


@needs_chromium
async def test_add_by_hand_change_a_category_inline_and_delete_with_undo(  # type: ignore[no-untyped-def]
    stack: Stack, new_user
) -> None:
    from tests.test_budgets import purchase

    user, key = await new_user("edit-browser")
    rows = [purchase(i, 2 + i, "45.00", "Dining") for i in range(3)]
    await post_records(
        [DemoRecord(user, tx) for tx in rows], service_url(stack.settings, "ingest"), {user: key}
    )
    api = service_url(stack.settings, "api")
    headers = {"Authorization": f"Bearer {key}"}

    async def transaction(client: httpx.AsyncClient, transaction_id: str) -> httpx.Response:
        return await client.get(f"{api}/v1/transactions/{transaction_id}")

    async with httpx.AsyncClient(timeout=30, headers=headers) as client:

        async def all_listed() -> bool:
            listed = await client.get(f"{api}/v1/transactions")
            return len(listed.json()["items"]) >= len(rows)

        await poll_until(all_listed, within_s=60, every_s=0.5)
        errors = await add_edit_and_delete_in_the_browser(api, key)
        assert errors == []

        async def edited_and_deleted() -> tuple[dict[str, Any], bool] | None:
            edited = (await transaction(client, "budget-0")).json()
            gone = (await transaction(client, "budget-2")).status_code == 404
            return (edited, gone) if (edited["category"], gone) == ("Takeaway", True) else None

        with contextlib.suppress(AssertionError):  # the assertions below say what is off
            await poll_until(edited_and_deleted, within_s=30, every_s=0.5)
        edited = (await transaction(client, "budget-0")).json()
        gone = (await transaction(client, "budget-2")).status_code == 404
        assert (edited["category"], edited["category_source"]) == ("Takeaway", "user")
        assert gone, "deleted once the undo window passed"
        assert (await transaction(client, "budget-1")).status_code == 200, "the undone one stays"
        listed = (await client.get(f"{api}/v1/transactions")).json()["items"]
        manual = [t for t in listed if t["merchant"] == "FARMERS MARKET"]
        assert [(t["category"], t["amount"], t["account_id"]) for t in manual] == [
            ("Groceries", "23.40", "cash")
        ]


async def test_security_headers_on_pages_and_api(stack: Stack) -> None:
    api = service_url(stack.settings, "api")
    async with httpx.AsyncClient(timeout=10) as client:
        for path in ("/", "/v1/transactions", "/healthz"):
            headers = (await client.get(f"{api}{path}")).headers
            assert headers["x-frame-options"] == "DENY", path
            assert headers["x-content-type-options"] == "nosniff", path
            assert headers["referrer-policy"] == "no-referrer", path
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        docs = (await client.get(f"{api}/docs")).headers
        assert "content-security-policy" not in docs, "Swagger UI is an inline page"
        assert docs["x-content-type-options"] == "nosniff"
