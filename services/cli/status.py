"""``spendstream status``: how a running stack is doing, in one screen. Every probe has a short
timeout and reports what it could not reach instead of failing the whole command."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.table import Table

from services.core.settings import Settings, get_settings
from services.devstack.stack import load_runtime, service_url

SERVICES = ("ingest", "scorer", "forecaster", "api")
PROBE_TIMEOUT_S = 3.0
console = Console()


@dataclass
class StackStatus:
    services: dict[str, str] = field(default_factory=dict)  # name: "ok", or what failed
    lag: dict[str, int | str] = field(default_factory=dict)  # group: messages behind
    dlq_messages: int | str = "unknown"
    model: dict[str, Any] | None = None
    forecast: dict[str, Any] | None = None
    drift_events_today: int | str = "unknown"
    problems: list[str] = field(default_factory=list)


async def _health(settings: Settings) -> dict[str, str]:
    async def probe(client: httpx.AsyncClient, name: str) -> str:
        try:
            response = await client.get(f"{service_url(settings, name)}/healthz")
        except httpx.HTTPError as exc:
            return f"unreachable ({type(exc).__name__})"
        return "ok" if response.status_code == 200 else f"unhealthy ({response.status_code})"

    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
        states = await asyncio.gather(*(probe(client, name) for name in SERVICES))
    return dict(zip(SERVICES, states, strict=True))


async def _kafka(settings: Settings, status: StackStatus) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    from services.core.lag import measure_lag, topic_partitions

    bootstrap = settings.kafka.bootstrap_or_default
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await asyncio.wait_for(asyncio.gather(admin.start(), consumer.start()), PROBE_TIMEOUT_S)
        await consumer.topics()
        for group in (settings.scorer.group_id, settings.forecast.group_id):
            lag = await measure_lag(admin, consumer, group, settings.topics.transactions)
            status.lag[group] = sum(lag.values())
        dlq = topic_partitions(consumer, settings.topics.dlq)
        if dlq:
            ends = await consumer.end_offsets(dlq)
            starts = await consumer.beginning_offsets(dlq)
            status.dlq_messages = sum(ends[tp] - starts[tp] for tp in dlq)
        else:
            status.dlq_messages = 0
    except Exception as exc:  # a status command reports, it does not crash
        status.problems.append(f"broker at {bootstrap}: {type(exc).__name__} {exc}".strip())
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()


async def _database(settings: Settings, status: StackStatus) -> None:
    import asyncpg

    if not settings.database.url:
        status.problems.append("no database: is `spendstream up` running?")
        return
    try:
        conn = await asyncio.wait_for(asyncpg.connect(settings.database.url), PROBE_TIMEOUT_S)
    except Exception as exc:
        status.problems.append(f"database: {type(exc).__name__}")
        return
    try:
        model = await conn.fetchrow(
            """SELECT version, created_at, training_rows FROM anomaly_models
               ORDER BY created_at DESC LIMIT 1"""
        )
        forecast = await conn.fetchrow(
            """SELECT run_id, created_at, scope, n_series, duration_s FROM forecast_runs
               ORDER BY created_at DESC LIMIT 1"""
        )
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        status.drift_events_today = int(
            await conn.fetchval(
                "SELECT count(*) FROM drift_metrics WHERE status = 'drift' AND computed_at >= $1",
                today,
            )
        )
        status.model = dict(model) if model else None
        status.forecast = dict(forecast) if forecast else None
    finally:
        await conn.close()


async def collect(settings: Settings) -> StackStatus:
    status = StackStatus()
    status.services = await _health(settings)
    await asyncio.gather(_kafka(settings, status), _database(settings, status))
    return status


def _age(when: datetime | None) -> str:
    if when is None:
        return ""
    seconds = int((datetime.now(UTC) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _print(status: StackStatus) -> None:
    grid = Table("", "", title="Spendstream status", show_header=False)
    for name, state in status.services.items():
        grid.add_row(f"service {name}", "[green]ok[/]" if state == "ok" else f"[red]{state}[/]")
    for group, lag in status.lag.items():
        grid.add_row(f"lag of group {group}", f"{lag:,} messages" if isinstance(lag, int) else lag)
    grid.add_row("dead letters", f"{status.dlq_messages}")
    model = status.model
    grid.add_row(
        "anomaly model",
        f"{model['version']}, trained {_age(model['created_at'])} "
        f"on {model['training_rows']:,} rows"
        if model
        else "none yet: the online detector scores until one is trained",
    )
    forecast = status.forecast
    grid.add_row(
        "last forecast run",
        f"{forecast['run_id']} ({forecast['scope']}), {_age(forecast['created_at'])}, "
        f"{forecast['n_series']:,} series in {forecast['duration_s']:.1f} s"
        if forecast
        else "none yet: the first runs once 60 days of history are in",
    )
    grid.add_row("drift events today", f"{status.drift_events_today}")
    console.print(grid)
    for problem in status.problems:
        console.print(f"[yellow]could not check[/] {problem}")


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Health of each service, consumer lag per group, dead letters, the anomaly model in
    service, the last forecast run and today's drift events."""
    result = asyncio.run(collect(load_runtime(get_settings())))
    if as_json:
        print(orjson.dumps(asdict(result), default=str).decode())
        return
    _print(result)
    if any(state != "ok" for state in result.services.values()):
        raise typer.Exit(1)
