"""``spendstream alerts tail``: follow the alert topics as they are published."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import orjson
import typer
from rich.console import Console

from services.core.settings import Settings, get_settings
from services.devstack.stack import load_runtime

alerts_app = typer.Typer(help="Follow alerts as they are published.", no_args_is_help=True)
console = Console()


def describe(alert: dict[str, object]) -> str:
    """One line a person can read: when, what, how unusual, and the strongest reason. A budget
    alert carries its own sentence."""
    if "kind" in alert and "text" in alert:
        return f"{alert.get('month')}  {alert.get('user_id')}  budget: {alert.get('text')}"
    reasons = alert.get("explanation") or []
    first = reasons[0].get("text", "") if isinstance(reasons, list) and reasons else ""
    return (
        f"{str(alert.get('timestamp', ''))[:16]}  {alert.get('user_id')}  "
        f"{alert.get('amount')} {alert.get('currency')} at {alert.get('merchant') or '?'}  "
        f"score {float(str(alert.get('score', 0))):.3f} ({alert.get('severity')})"
        + (f": {first}" if first else "")
    )


async def _tail(
    settings: Settings, from_beginning: bool, user: str | None, count: int | None, as_json: bool
) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        settings.topics.alerts,
        settings.topics.budget_alerts,
        bootstrap_servers=settings.kafka.bootstrap_or_default,
        enable_auto_commit=False,  # a reader, not a member of any service's group
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    shown = 0
    try:
        async for message in consumer:
            try:
                alert = orjson.loads(message.value or b"null")
            except orjson.JSONDecodeError:
                continue
            if not isinstance(alert, dict) or (user and alert.get("user_id") != user):
                continue
            if as_json:
                print(orjson.dumps(alert).decode())
            else:
                console.print(describe(alert))
            shown += 1
            if count is not None and shown >= count:
                return
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


@alerts_app.command("tail")
def tail(
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start with the oldest alert kept.")
    ] = False,
    user: Annotated[str | None, typer.Option(help="Only this user's alerts.")] = None,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each alert as JSON.")] = False,
) -> None:
    """Follow alerts.anomalies.v1 and budgets.alerts.v1, one line per alert (Ctrl-C stops)."""
    settings = load_runtime(get_settings())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(settings, from_beginning, user, count, as_json))
