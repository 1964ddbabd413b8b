"""``spendstream fx import FILE``: load dated exchange rates (the ECB reference-rate CSV as-is)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from services.core.fx import Rate, RatesError, parse_rates, store_rates
from services.core.settings import get_settings
from services.devstack.stack import load_runtime

fx_app = typer.Typer(help="Exchange rates for converting to each user's base currency.")
console = Console()
CHUNK = 10_000


async def _store(dsn: str, rates: list[Rate]) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("storing rates", total=len(rates))
            async with conn.transaction():
                for start in range(0, len(rates), CHUNK):
                    await store_rates(conn, rates[start : start + CHUNK])
                    progress.advance(task, len(rates[start : start + CHUNK]))
    finally:
        await conn.close()


@fx_app.command("import")
def import_rates(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="eurofxref-hist.csv or alike.")
    ],
) -> None:
    """Load dated rates (units per euro) from a CSV: the ECB's reference-rate file works as-is.
    Re-importing a day replaces its rates."""
    settings = load_runtime(get_settings())
    if not settings.database.url:
        console.print("[bold red]error:[/] no database: start `spendstream up` or set "
                      "SPENDSTREAM_DATABASE_URL")  # fmt: skip
        raise typer.Exit(1)
    try:
        rates = list(parse_rates(file.read_text(encoding="utf-8-sig")))
    except (RatesError, UnicodeDecodeError) as exc:
        console.print(f"[bold red]error:[/] {file}: {exc}")
        raise typer.Exit(1) from None
    if not rates:
        console.print(f"[bold red]error:[/] {file} holds no rates")
        raise typer.Exit(1)
    asyncio.run(_store(settings.database.url, rates))
    currencies = sorted({r.currency for r in rates})
    first, last = min(r.day for r in rates), max(r.day for r in rates)
    console.print(
        f"stored {len(rates):,} rates for {len(currencies)} currencies "
        f"({', '.join(currencies[:12])}{', ...' if len(currencies) > 12 else ''}) "
        f"from {first} to {last}"
    )
