"""The first minute, as a new user has it: `spendstream up --demo`, the key it prints, and a
dashboard whose every section has something to show within 60 seconds of that key."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.demo.generator import generate
from tests.browser import launch, needs_chromium, sign_in
from tests.polling import poll_until
from tests.test_cli import start_up

pytestmark = pytest.mark.integration
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
END = "2026-11-01"
WITHIN_S = 60
SECTIONS = (
    "anomalies",
    "categories",
    "recurring",
    "income",
    "drift",
    "clusters",
    "forecasts",
    "budgets",
    "recent",
)


def ready(answers: dict[str, Any]) -> list[str]:
    """What the demo user's answers still lack."""
    missing = []
    anomalies = answers["anomalies"]["items"]
    if not any(a["score"]["model_version"].startswith("ens-") for a in anomalies):
        missing.append("anomalies scored by the trained ensemble")
    if not answers["clusters"]["clusters"]:
        missing.append("clusters")
    drift = [p for s in answers["drift"]["series"] for p in s["points"] if p["status"] == "drift"]
    if not drift or not drift[-1]["top_contributors"]:
        missing.append("a drift with its contributors")
    rent = [
        m for s in answers["forecasts"]["series"] if s["category"] == "Rent" for m in s["monthly"]
    ]
    if not rent or Decimal(rent[0]["bills"]) == 0:
        missing.append("a rent forecast made of the rent bill")
    return missing


async def answers_of(api: str, key: str) -> dict[str, Any]:
    paths = {
        "anomalies": "/v1/anomalies?limit=200",
        "clusters": "/v1/categories/clusters",
        "drift": "/v1/drift",
        "forecasts": "/v1/forecasts",
        "summary": f"/v1/insights/summary?month={END[:7]}",
    }
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {key}"}) as c:
        responses = await asyncio.gather(*(c.get(api + path) for path in paths.values()))
    return {name: r.json() for name, r in zip(paths, responses, strict=True)}


@needs_chromium
def test_make_run_shows_a_full_dashboard_within_a_minute(tmp_path: Path) -> None:
    up, ports, _ = start_up(tmp_path / "data", "--demo", "--end", END)
    api = f"http://127.0.0.1:{ports['API']}"
    try:
        key, printed_at = _key_of(up)
        answers = _wait_until_ready(api, key, printed_at)
        asyncio.run(_dashboard_sections_are_full(api, key))
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
    _planted_kinds_are_flagged(answers)


def _key_of(up: subprocess.Popen[str]) -> tuple[str, float]:
    assert up.stdout is not None
    stdout, lines = up.stdout, []

    def key_printed() -> str | None:
        line = stdout.readline()
        assert line, "no key printed:\n" + "".join(lines)
        lines.append(line)
        match = re.search(r"API key\s+(ss_\S+)", line)
        return match.group(1) if match else None

    key = poll_until(key_printed, within_s=240, every_s=0)
    return key, time.monotonic()


def _wait_until_ready(api: str, key: str, printed_at: float) -> dict[str, Any]:
    missing: list[str] = ["everything"]

    def all_sections_ready() -> dict[str, Any] | None:
        nonlocal missing
        answers = asyncio.run(answers_of(api, key))
        missing = ready(answers)
        return None if missing else answers

    try:
        answers: dict[str, Any] = poll_until(
            all_sections_ready, within_s=WITHIN_S - (time.monotonic() - printed_at), every_s=2
        )
    except AssertionError:
        raise AssertionError(
            f"{WITHIN_S} s after the key, still missing: {', '.join(missing)}"
        ) from None
    return answers


async def _dashboard_sections_are_full(api: str, key: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await launch(playwright)
        page = await browser.new_page(viewport={"width": 1400, "height": 1800})
        await page.goto(f"{api}/")
        await sign_in(page, key)
        empty = [s for s in SECTIONS if await page.locator(f"#{s} .empty").count()]
        OUTPUT.mkdir(exist_ok=True)
        await page.screenshot(path=str(OUTPUT / "first-run.png"), full_page=True)
        # The README's picture (docs/dashboard.png, copied when the dashboard changes).
        await page.set_viewport_size({"width": 1400, "height": 1300})
        await page.screenshot(path=str(OUTPUT / "first-run-top.png"))
        await browser.close()
    assert empty == [], f"sections still empty: {empty}"


def _planted_kinds_are_flagged(answers: dict[str, Any]) -> None:
    """Every kind of anomaly the demo planted for this user is among the flagged, with reasons."""
    kinds: dict[str, set[str]] = defaultdict(set)
    for record in generate(users=5, months=12, seed=7, end=date.fromisoformat(END)):
        if record.user_id == "demo-0001" and record.anomaly:
            kinds[record.anomaly].add(record.transaction["transaction_id"])
    flagged = {a["transaction_id"]: a for a in answers["anomalies"]["items"]}
    assert all(a["score"]["explanation"] for a in flagged.values()), "every flag has a reason"
    found = {kind for kind, ids in kinds.items() if ids & set(flagged)}
    assert found == set(kinds), f"planted {sorted(kinds)}, flagged {sorted(found)}"
