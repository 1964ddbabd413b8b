"""The CLI as a user runs it: subprocesses, real servers, output read back."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
import pytest

from services.devstack.embedded import free_port
from services.devstack.stack import Stack
from tests.polling import poll_until

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
    euro = subprocess.run(
        [*SPENDSTREAM, "keys", "create", "--user", "cli-euro", "--base-currency", "EUR"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert euro.returncode == 0, euro.stderr

    async def base_currency() -> str:
        conn = await asyncpg.connect(migrated_dsn)
        try:
            value: str = await conn.fetchval(
                "SELECT base_currency FROM users WHERE user_id = 'cli-euro'"
            )
            return value
        finally:
            await conn.close()

    assert asyncio.run(base_currency()) == "EUR"
    bad = subprocess.run(
        [*SPENDSTREAM, "keys", "create", "--user", "no spaces allowed"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "--user" in bad.stderr


def start_up(
    data: Path, *args: str
) -> tuple[subprocess.Popen[str], dict[str, int], dict[str, str]]:
    """`spendstream up ARGS` on free ports with its data under ``data``: the process, the
    services' ports by name, and the environment that reaches it."""
    ports = {name: free_port() for name in ("API", "INGEST", "SCORER", "FORECASTER")}
    env = cli_env(
        SPENDSTREAM_DATA_DIR=str(data),
        SPENDSTREAM_EMBEDDED_KAFKA_PORT=str(free_port()),
        SPENDSTREAM_EMBEDDED_POSTGRES_PORT=str(free_port()),
        **{f"SPENDSTREAM_{name}_PORT": str(port) for name, port in ports.items()},
    )
    up = subprocess.Popen(
        [*SPENDSTREAM, "up", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return up, ports, env


def test_up_starts_everything_and_sigterm_leaves_nothing_behind(tmp_path: Path) -> None:
    up, ports, env = start_up(
        tmp_path / "data", "--demo", "--users", "1", "--months", "1", "--end", "2026-06-01"
    )
    output: list[str] = []
    try:
        assert up.stdout is not None
        stdout = up.stdout

        def key_printed() -> str | None:
            line = stdout.readline()
            assert line, "up exited without printing a key:\n" + "".join(output)
            output.append(line)
            match = re.search(r"API key\s+(ss_\S+)", line)
            return match.group(1) if match else None

        key = poll_until(key_printed, within_s=180, every_s=0)
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 6  # broker, database, four services
        for name, port in ports.items():
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert health.status_code == 200, (name, health.text)
        api = f"http://127.0.0.1:{ports['API']}"

        def listed() -> list[Any]:
            page = httpx.get(f"{api}/v1/transactions", headers={"Authorization": f"Bearer {key}"})
            return page.json()["items"] if page.status_code == 200 else []

        poll_until(listed, within_s=60, every_s=0.5, what="demo data reached the API")
        status = subprocess.run(
            [*SPENDSTREAM, "status", "--json"], env=env, capture_output=True, text=True
        )
        assert status.returncode == 0, status.stdout + status.stderr
        report = orjson.loads(status.stdout)
        assert report["services"] == dict.fromkeys(("ingest", "scorer", "forecaster", "api"), "ok")
        assert set(report["lag"]) == {"scorer", "forecaster"}
        assert all(isinstance(v, int) and v >= 0 for v in report["lag"].values())
        assert report["dlq_messages"] == 0 and report["problems"] == []
        assert isinstance(report["drift_events_today"], int)
        table = subprocess.run([*SPENDSTREAM, "status"], env=env, capture_output=True, text=True)
        assert "service forecaster" in table.stdout and "dead letters" in table.stdout
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
    assert up.returncode is not None
    _, alive = psutil.wait_procs(children, timeout=20)
    assert alive == [], f"left behind: {alive}"


def test_alerts_tail_prints_alerts_as_they_are_published(stack: Stack) -> None:
    """An alert on alerts.anomalies.v1, read back by `alerts tail` as a person sees it."""
    import asyncio
    from datetime import UTC, datetime

    from aiokafka import AIOKafkaProducer

    from schemas import AnomalyAlert

    settings = stack.settings
    user = f"tail-{os.urandom(3).hex()}"
    alert = AnomalyAlert(
        alert_id=f"{user}:t1",
        user_id=user,
        transaction_id="t1",
        account_id="card",
        timestamp=datetime(2026, 11, 28, 21, 4, tzinfo=UTC),
        amount="412.00",
        currency="USD",
        merchant="BEST BUY #1021",
        category="Shopping",
        score=0.995,
        severity="critical",
        detector_scores={"lof": 0.99},
        explanation=[{"text": "$412.00 at Shopping is 9x your usual $45"}],
        model_version="m1",
        scored_at=datetime(2026, 11, 28, 21, 4, 2, tzinfo=UTC),
    )

    async def publish() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_or_default)
        await producer.start()
        try:
            await producer.send_and_wait(settings.topics.alerts, alert.model_dump_json().encode())
        finally:
            await producer.stop()

    asyncio.run(publish())
    env = cli_env(
        SPENDSTREAM_KAFKA_BOOTSTRAP=settings.kafka.bootstrap_or_default,
        SPENDSTREAM_DATABASE_URL=settings.database.require_url(),
        COLUMNS="200",
    )
    command = [*SPENDSTREAM, "alerts", "tail", "--from-beginning", "--user", user, "--count", "1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "412.00 USD at BEST BUY #1021" in done.stdout
    assert "score 0.995 (critical): $412.00 at Shopping is 9x your usual $45" in done.stdout
    as_json = subprocess.run(
        [*command, "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert orjson.loads(as_json.stdout)["alert_id"] == f"{user}:t1"
