"""The ``spendstream`` command line."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import date
from pathlib import Path
from typing import Annotated, NoReturn

import orjson
import typer
from rich.console import Console
from rich.progress import Progress

from services.cli.alerts import alerts_app
from services.cli.evaluate import eval_app
from services.cli.fx import fx_app
from services.cli.operations import dlq_app, import_file, webhooks_app
from services.cli.status import status
from services.core import auth
from services.core.db import migrate as apply_migrations
from services.core.logging import configure_logging
from services.core.settings import Settings, get_settings
from services.demo.generator import generate
from services.demo.loader import demo_budgets, post_records, put_budgets, write_records
from services.devstack.stack import Stack, load_runtime, service_url

app = typer.Typer(
    help="Spendstream: real-time analytics for personal-finance transactions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(eval_app, name="eval")
app.add_typer(dlq_app, name="dlq")
app.add_typer(webhooks_app, name="webhooks")
app.command("import")(import_file)
app.command("status")(status)
app.add_typer(alerts_app, name="alerts")
app.add_typer(fx_app, name="fx")
console = Console()
err = Console(stderr=True)


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def settings_with_runtime() -> Settings:
    return load_runtime(get_settings())


def database_url(settings: Settings) -> str:
    if not settings.database.url:
        fail("no database: start the stack with `spendstream up`, or set SPENDSTREAM_DATABASE_URL")
    return settings.database.url


async def _create_keys(
    dsn: str, users: list[str], label: str | None, base_currency: str | None = None
) -> dict[str, str]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        keys = {user: (await auth.create_key(conn, user, label)).secret for user in users}
        if base_currency is not None:
            await auth.set_base_currency(conn, users, base_currency)
        return keys
    finally:
        await conn.close()


@app.command()
def migrate() -> None:
    """Apply pending database migrations (each exactly once)."""
    settings = settings_with_runtime()
    applied = asyncio.run(apply_migrations(database_url(settings)))
    if applied:
        for m in applied:
            console.print(f"applied {m.version:04d}_{m.name}")
    else:
        console.print("database is up to date")


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="User the key acts for (created if new).")],
    label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
    base_currency: Annotated[
        str | None,
        typer.Option(help="Set the user's base currency too (ISO 4217, e.g. EUR)."),
    ] = None,
) -> None:
    """Print a new API key. Only its hash is stored: copy it now."""
    import re

    if not re.match(auth.USER_ID_PATTERN, user):
        fail("--user must be 1-64 characters of letters, digits, '.', '_', '@' or '-'")
    if base_currency is not None and not re.fullmatch(r"[A-Z]{3}", base_currency):
        fail("--base-currency must be an ISO 4217 code such as EUR")
    settings = settings_with_runtime()
    keys = asyncio.run(_create_keys(database_url(settings), [user], label, base_currency))
    print(keys[user])


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The id shown by `keys list`.")],
) -> None:
    """Revoke a key; services stop accepting it within SPENDSTREAM_API_KEY_CACHE_SECONDS."""
    import asyncpg

    async def run() -> bool:
        conn = await asyncpg.connect(database_url(settings_with_runtime()))
        try:
            return await auth.revoke_key(conn, key_id)
        finally:
            await conn.close()

    if not asyncio.run(run()):
        fail(f"no active key with id {key_id!r}")
    console.print(f"revoked {key_id}")


@keys_app.command("list")
def keys_list(
    user: Annotated[str | None, typer.Option(help="Only this user's keys.")] = None,
) -> None:
    """List keys (ids and owners; secrets are never stored)."""
    import asyncpg
    from rich.table import Table

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url(settings_with_runtime()))
        try:
            return await auth.list_keys(conn, user)
        finally:
            await conn.close()

    table = Table("key id", "user", "label", "created", "revoked")
    for row in asyncio.run(run()):
        table.add_row(
            row["key_id"],
            row["user_id"],
            row["label"] or "",
            f"{row['created_at']:%Y-%m-%d %H:%M}",
            f"{row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "",
        )
    console.print(table)


def _load_demo(
    settings: Settings, users: int, months: int, seed: int, end: date | None
) -> dict[str, str]:
    records = generate(users=users, months=months, seed=seed, end=end)
    user_ids = sorted({r.user_id for r in records})
    keys = asyncio.run(_create_keys(database_url(settings), user_ids, "demo"))
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"posting {len(records):,} demo transactions", total=len(records))
        accepted = asyncio.run(
            post_records(
                records,
                service_url(settings, "ingest"),
                keys,
                on_progress=lambda n: progress.advance(task, n),
            )
        )
    anomalies = sum(r.anomaly is not None for r in records)
    console.print(
        f"demo data: {accepted:,} transactions for {len(user_ids)} users "
        f"({anomalies} labelled anomalies) accepted by ingest"
    )
    # The first user gets budgets, so the dashboard shows them from the first run.
    budgets = demo_budgets(records, user_ids[0])
    asyncio.run(put_budgets(service_url(settings, "api"), keys[user_ids[0]], budgets))
    console.print(f"demo budgets for {user_ids[0]}: {', '.join(budgets)}")
    return keys


DemoEnd = Annotated[
    str | None,
    typer.Option(
        help="Exclusive end date of the demo data, YYYY-MM-DD (default: the 1st of this month, "
        "as of yesterday, so no row lies in the future)."
    ),
]


def demo_end(end: str | None) -> date | None:
    try:
        return date.fromisoformat(end) if end else None
    except ValueError:
        fail(f"--end must be a date like 2026-10-01, got {end!r}")


@app.command()
def demo(
    users: Annotated[int, typer.Option(min=1, max=10_000, help="How many people.")] = 3,
    months: Annotated[int, typer.Option(min=1, max=120, help="Months of history each.")] = 6,
    seed: Annotated[int, typer.Option(help="Same seed, same data.")] = 7,
    end: DemoEnd = None,
    out: Annotated[
        Path | None, typer.Option(help="Write to this CSV (or .jsonl) instead of posting.")
    ] = None,
) -> None:
    """Generate realistic histories with labelled anomalies; post them to ingest or write a file."""
    end_date = demo_end(end)
    if out is not None:
        records = generate(users=users, months=months, seed=seed, end=end_date)
        write_records(records, out)
        console.print(
            f"wrote {len(records):,} transactions "
            f"({sum(r.anomaly is not None for r in records)} labelled anomalies) to {out}"
        )
        return
    settings = settings_with_runtime()
    keys = _load_demo(settings, users, months, seed, end_date)
    first = sorted(keys)[0]
    console.print(f"API key for {first}: [bold]{keys[first]}[/]")


@app.command()
def up(
    demo: Annotated[bool, typer.Option("--demo", help="Also load demo data.")] = False,
    users: Annotated[int, typer.Option(min=1, help="Demo users.")] = 5,
    months: Annotated[int, typer.Option(min=1, help="Demo months.")] = 12,
    seed: Annotated[int, typer.Option(help="Demo seed.")] = 7,
    end: DemoEnd = None,
) -> None:
    """Run the whole pipeline locally; Ctrl-C stops everything it started."""
    end_date = demo_end(end)
    settings = get_settings()
    configure_logging(settings.logs.level, service="up", tracebacks=settings.logs.tracebacks)
    stack = Stack(settings)

    def terminate(signum: int, _frame: object) -> NoReturn:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        with console.status("starting broker, database and services..."):
            stack.start()
        s = stack.settings
        # soft_wrap: a URL cut at the terminal's width is a URL nobody can paste.
        console.print(
            f"broker      {s.kafka.bootstrap}{'  (embedded tansu)' if stack.kafka else ''}",
            soft_wrap=True,
        )
        console.print(
            f"database    {s.database.url}{'  (embedded)' if stack.postgres else ''}",
            soft_wrap=True,
        )
        for name in ("ingest", "scorer", "forecaster", "api"):
            console.print(f"{name:<12}{service_url(s, name)}", soft_wrap=True)
        if demo:
            keys = _load_demo(s, users, months, seed, end_date)
            key = keys[sorted(keys)[0]]
        else:
            key = asyncio.run(_create_keys(database_url(s), ["demo"], "spendstream up"))["demo"]
        console.print(f"\n[bold]Dashboard[/]  {service_url(s, 'api')}/")
        console.print(f"[bold]API docs[/]   {service_url(s, 'api')}/docs")
        console.print(f"[bold]API key[/]    {key}", soft_wrap=True)
        console.print("Ctrl-C to stop.")
        while not stack.failed_services():
            time.sleep(0.5)
        fail(f"{', '.join(stack.failed_services())} stopped unexpectedly; see {stack.log_dir}")
    except KeyboardInterrupt:
        console.print("stopping...")
    except RuntimeError as exc:
        fail(str(exc))
    finally:
        stack.stop()


@app.command()
def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Smaller data, fewer repeats.")] = False,
    only: Annotated[list[str] | None, typer.Option(help="Run only these benchmarks.")] = None,
    compare: Annotated[Path | None, typer.Option(help="A saved result to compare with.")] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the JSON results.")] = None,
) -> None:
    """Run the benchmarks; print a table and write bench/results/latest.json."""
    from bench.run import run

    if compare is not None and not compare.exists():
        fail(f"no such file: {compare}")
    run(quick=quick, only=only, compare=compare, out=out)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="ingest, scorer, forecaster or api.")],
) -> None:
    """Run one service in the foreground (what containers run)."""
    import uvicorn

    from services.devstack.stack import SERVICE_APPS, service_port

    if service not in SERVICE_APPS:
        fail(f"unknown service {service!r}; one of {', '.join(SERVICE_APPS)}")
    settings = get_settings()
    configure_logging(settings.logs.level, service=service, tracebacks=settings.logs.tracebacks)
    uvicorn.run(
        SERVICE_APPS[service],
        log_config=None,  # uvicorn's own lines go through the service's formatter too
        host=settings.http.host,
        port=service_port(settings, service),
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=10,
        factory=True,  # each service is built by create_app(), reading settings then
    )


@app.command("schemas")
def export_schemas(
    out: Annotated[
        Path, typer.Option(help="Folder for the JSON Schema and AsyncAPI files.")
    ] = Path("schemas/generated"),
) -> None:
    """Export JSON Schema for every event, and the AsyncAPI documents of the consumers."""
    from schemas import EVENT_MODELS
    from services.cli.asyncapi import asyncapi_documents

    out.mkdir(parents=True, exist_ok=True)
    for name, model in EVENT_MODELS.items():
        (out / f"{name}.schema.json").write_bytes(
            orjson.dumps(model.model_json_schema(), option=orjson.OPT_INDENT_2)
        )
    for service, document in asyncapi_documents().items():
        (out / f"asyncapi.{service}.json").write_bytes(
            orjson.dumps(document, option=orjson.OPT_INDENT_2)
        )
    console.print(f"wrote {len(EVENT_MODELS)} JSON Schemas and the AsyncAPI documents to {out}")


if __name__ == "__main__":
    app()
