"""Debian's Chromium through Playwright, as every browser test launches it and signs in."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


async def launch(playwright: Any) -> Any:
    """Debian's chromium, never a downloaded browser."""
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


async def sign_in(page: Any, key: str) -> None:
    """Enter the API key on the dashboard the page shows, and wait until it has loaded."""
    await page.fill("#key", key)
    await page.click("#key-form button[type=submit]")
    await page.wait_for_selector("body[data-loaded=true]", timeout=60_000)


needs_chromium = pytest.mark.skipif(
    not HAVE_CHROMIUM, reason="Debian's chromium is not installed (.ci/run installs it)"
)
