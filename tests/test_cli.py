"""The CLI as a user runs it: subprocesses, real servers, output read back."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from services.core.embedded import free_port

pytestmark = pytest.mark.integration
SPENDSTREAM = [sys.executable, "-m", "services.cli.main"]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPENDSTREAM_")}
    env.update(extra)
    return env


def test_demo_writes_a_labelled_file(tmp_path: Path) -> None:
    out = tmp_path / "demo.csv"
    args = [
        *SPENDSTREAM,
        "demo",
        "--users",
        "2",
        "--months",
        "2",
        "--seed",
        "4",
        "--end",
        "2026-06-01",
    ]
    subprocess.run([*args, "--out", str(out)], check=True, env=cli_env(), capture_output=True)
    rows = list(csv.DictReader(out.open()))
    assert {r["user_id"] for r in rows} == {"demo-0001", "demo-0002"}
    assert any(r["is_anomaly"] == "1" and r["anomaly_kind"] for r in rows)
    again = tmp_path / "again.csv"
    subprocess.run([*args, "--out", str(again)], check=True, env=cli_env(), capture_output=True)
    assert out.read_bytes() == again.read_bytes()


def test_migrate_and_keys_create(migrated_dsn: str) -> None:
    env = cli_env(SPENDSTREAM_DATABASE_URL=migrated_dsn)
    migrated = subprocess.run([*SPENDSTREAM, "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0 and "up to date" in migrated.stdout
    created = subprocess.run(
        [*SPENDSTREAM, "keys", "create", "--user", "cli-user"],
        env=env,
        capture_output=True,
        text=True,
    )
    secret = created.stdout.strip()
    assert created.returncode == 0 and secret.startswith("ss_")

    async def stored() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(migrated_dsn)
        try:
            return await conn.fetch("SELECT * FROM api_keys WHERE user_id = 'cli-user'")
        finally:
            await conn.close()

    import asyncio

    rows = asyncio.run(stored())
    assert len(rows) == 1 and secret not in str(dict(rows[0]))
    bad = subprocess.run(
        [*SPENDSTREAM, "keys", "create", "--user", "no spaces allowed"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "--user" in bad.stderr


def test_up_starts_everything_and_sigterm_leaves_nothing_behind(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("API", "INGEST", "SCORER", "FORECASTER")}
    env = cli_env(
        SPENDSTREAM_DATA_DIR=str(tmp_path / "data"),
        SPENDSTREAM_EMBEDDED_KAFKA_PORT=str(free_port()),
        SPENDSTREAM_EMBEDDED_POSTGRES_PORT=str(free_port()),
        **{f"SPENDSTREAM_{name}_PORT": str(port) for name, port in ports.items()},
    )
    up = subprocess.Popen(
        [*SPENDSTREAM, "up", "--demo", "--users", "1", "--months", "1", "--end", "2026-06-01"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 180
        key = None
        while key is None and time.monotonic() < deadline:
            line = up.stdout.readline()
            if not line:
                break
            output.append(line)
            if match := re.search(r"API key\s+(ss_\S+)", line):
                key = match.group(1)
        assert key, "".join(output)
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 6  # broker, database, four services
        for name, port in ports.items():
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert health.status_code == 200, (name, health.text)
        api = f"http://127.0.0.1:{ports['API']}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            page = httpx.get(f"{api}/v1/transactions", headers={"Authorization": f"Bearer {key}"})
            if page.status_code == 200 and page.json()["items"]:
                break
            time.sleep(0.5)
        assert page.json()["items"], "demo data reached the API"
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
    assert up.returncode is not None
    _, alive = psutil.wait_procs(children, timeout=20)
    assert alive == [], f"left behind: {alive}"
