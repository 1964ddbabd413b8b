"""CLI commands for operators: file imports, webhook secrets, and the dead-letter topic."""

from __future__ import annotations

import asyncio
import base64
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import httpx
import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from schemas import DeadLetter
from schemas.imports import CsvMapping
from services.core.settings import Settings, get_settings
from services.devstack.stack import load_runtime, service_url

if TYPE_CHECKING:  # the parsers load only when a file is imported
    from schemas import Transaction
    from services.ingest.imports import ExportRead

console = Console()
err = Console(stderr=True)
dlq_app = typer.Typer(help="Inspect and replay the dead-letter topic.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhook secrets per user.", no_args_is_help=True)


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


# Flags whose "off" spelling says more than --no-...
_FLAGS = {
    "negative_is_debit": "--negative-is-debit/--positive-is-debit",
    "decimal_comma": "--decimal-comma/--decimal-point",
}


def with_csv_mapping_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` one option per ``CsvMapping`` option (``--date-column``, ...), with the
    model's descriptions, and call it with the ``mapping`` they make."""
    signature = inspect.signature(command, eval_str=True)
    options = []
    for name in CsvMapping.OPTIONS:
        field = CsvMapping.model_fields[name]
        alias = field.alias or name
        flag = _FLAGS.get(name, "--" + alias.replace("_", "-"))
        option = typer.Option(flag, help=field.description, show_default=False)
        options.append(
            inspect.Parameter(
                alias,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[(field.annotation, option)],
            )
        )

    @functools.wraps(command)
    def run(**values: Any) -> None:
        given = {p.name: values.pop(p.name) for p in options}
        try:
            mapping = CsvMapping.model_validate({k: v for k, v in given.items() if v is not None})
        except ValidationError as exc:
            _fail("; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors()).replace("_", "-"))
        command(**values, mapping=mapping)

    kept = [p for p in signature.parameters.values() if p.name != "mapping"]
    run.__signature__ = signature.replace(parameters=[*kept, *options])  # type: ignore[attr-defined]
    return run


@with_csv_mapping_options
def import_file(
    file: Annotated[Path, typer.Argument(help="CSV, OFX, QFX, CAMT.053 XML or QIF export.")],
    account: Annotated[str | None, typer.Option(help="Account id (required for CSV).")] = None,
    api_key: Annotated[
        str | None, typer.Option(help="Your API key (default: SPENDSTREAM_API_KEY).")
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help="The bank's export format (default: recognised from the header)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print how the file is read; import nothing.")
    ] = False,
    currency: Annotated[
        str | None, typer.Option(help="Currency (CSV default USD; OFX files name their own).")
    ] = None,
    *,
    mapping: CsvMapping,
) -> None:
    """Import a bank export through ingest. Columns, date format and signs of common exports
    are recognised; anything given here wins. Re-importing creates no duplicates."""
    if not file.exists():
        _fail(f"no such file: {file}")
    read = _read_export(file, mapping, account, currency, preset)
    if dry_run:
        _print_dry_run(file, read)
        return
    settings = load_runtime(get_settings())
    api_key = api_key or (
        settings.security.api_key.get_secret_value() if settings.security.api_key else None
    )
    if not api_key:
        _fail("pass --api-key or set SPENDSTREAM_API_KEY (make one: `spendstream keys create`)")
    accepted = _post_transactions(settings, api_key, file.name, read.transactions)
    console.print(f"imported {accepted:,} transactions (already-known ones change nothing)")


def _read_export(
    file: Path,
    mapping: CsvMapping,
    account: str | None,
    currency: str | None,
    preset: str | None,
) -> ExportRead:
    from services.ingest.imports import AccountRequired, ImportErrors, read_export

    try:
        return read_export(
            file.read_bytes(),
            filename=file.name,
            mapping=mapping,
            account_id=account,
            currency=currency,
            preset=preset,
        )
    except AccountRequired as exc:
        _fail(f"{exc}: pass --account")
    except ImportErrors as exc:
        for problem in exc.errors[:20]:
            err.print(f"row {problem.row}, column {problem.column}: {problem.message}")
        _fail(f"{len(exc.errors)} problem(s); nothing was imported")


DRY_RUN_ROWS = 10


def _print_dry_run(file: Path, read: ExportRead) -> None:
    """How the file was read, and its first rows as they would be imported."""
    if read.detected is not None:
        for note in read.detected.notes:
            console.print(f"• {note}")
        mapping = read.detected.mapping
        columns = ", ".join(f"{role} = {name!r}" for role, name in mapping.columns().items())
        console.print(f"columns: {columns}")
        console.print(
            f"dates: {mapping.date_format or 'each row tried in the common formats'}; "
            + (
                "direction from the type column"
                if mapping.sign_from_type
                else "debit and credit columns"
                if mapping.debit and mapping.credit
                else f"{'negative' if mapping.negative_is_debit is not False else 'positive'}"
                " amounts are money out"
            )
        )
    grid = Table(
        "date",
        "direction",
        "amount",
        "currency",
        "merchant",
        "category",
        title=f"{file.name}: {len(read.transactions):,} transactions (dry run: nothing imported)",
    )
    for t in read.transactions[:DRY_RUN_ROWS]:
        grid.add_row(
            t.timestamp.date().isoformat(),
            t.direction.value,
            f"{t.amount}",
            t.currency,
            t.merchant or "",
            t.category or "",
        )
    console.print(grid)


def _post_transactions(
    settings: Settings, api_key: str, name: str, transactions: list[Transaction]
) -> int:
    url = f"{service_url(settings, 'ingest')}/v1/transactions"
    accepted = 0
    with Progress(console=console) as progress, httpx.Client(timeout=60) as client:
        task = progress.add_task(f"importing {name}", total=len(transactions))
        for start in range(0, len(transactions), 1000):
            batch = transactions[start : start + 1000]
            body = orjson.dumps(
                {"transactions": [t.model_dump(mode="json", exclude_none=True) for t in batch]}
            )
            response = client.post(
                url,
                params={"source": "import"},
                content=body,
                headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            )
            if response.status_code != 202:
                _fail(f"ingest answered {response.status_code}: {response.text[:300]}")
            accepted += response.json()["accepted"]
            progress.advance(task, len(batch))
    return accepted


@webhooks_app.command("secret")
def webhook_secret(user: Annotated[str, typer.Option(help="The user the bank posts for.")]) -> None:
    """Print a new webhook secret for the user; the previous one stays valid (rotation)."""
    import asyncpg

    from services.ingest.store import rotate_webhook_secret

    settings = load_runtime(get_settings())
    if not settings.database.url:
        _fail("no database: start the stack with `spendstream up`, or set SPENDSTREAM_DATABASE_URL")

    async def run() -> str:
        conn = await asyncpg.connect(settings.database.url)
        try:
            return await rotate_webhook_secret(conn, user)
        finally:
            await conn.close()

    print(asyncio.run(run()))


async def _read_dlq(settings: Settings, limit: int) -> list[tuple[int, DeadLetter]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_or_default,
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(settings.topics.dlq, p)
            for p in sorted(consumer.partitions_for_topic(settings.topics.dlq) or {0})
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        letters: list[tuple[int, DeadLetter]] = []

        async def behind() -> bool:
            return any([await consumer.position(p) < end[p] for p in partitions])

        while await behind() and len(letters) < limit:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                letters.extend((r.offset, DeadLetter.model_validate_json(r.value)) for r in records)
        return letters[:limit]
    finally:
        await consumer.stop()


@dlq_app.command("list")
def dlq_list(limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100) -> None:
    """Show dead letters: where each came from and why it was rejected."""
    letters = asyncio.run(_read_dlq(load_runtime(get_settings()), limit))
    table = Table("dlq offset", "from", "consumer", "failed at", "error")
    for offset, letter in letters:
        table.add_row(
            str(offset),
            f"{letter.topic}[{letter.partition}]@{letter.offset}",
            letter.consumer_group,
            f"{letter.failed_at:%Y-%m-%d %H:%M:%S}",
            letter.error[:120],
        )
    console.print(table)
    console.print(f"{len(letters)} dead letter(s)")


@dlq_app.command("replay")
def dlq_replay(
    offsets: Annotated[
        list[int] | None, typer.Argument(help="DLQ offsets to replay (default: all).")
    ] = None,
) -> None:
    """Send dead letters' original bytes back to their topic, e.g. after fixing a bug."""
    from aiokafka import AIOKafkaProducer

    settings = load_runtime(get_settings())

    async def run() -> int:
        letters = await _read_dlq(settings, 1_000_000)
        chosen = [letter for offset, letter in letters if not offsets or offset in offsets]
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka.bootstrap_or_default, acks="all"
        )
        await producer.start()
        try:
            for letter in chosen:
                await producer.send_and_wait(
                    letter.topic,
                    base64.b64decode(letter.value_b64),
                    key=letter.key.encode() if letter.key else None,
                )
        finally:
            await producer.stop()
        return len(chosen)

    console.print(f"replayed {asyncio.run(run())} message(s)")
