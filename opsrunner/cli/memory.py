"""`opsrunner memory show`: the daily memory entries of one day."""

from __future__ import annotations

import datetime as dt
import json

import click

from .. import report
from ..settings import BadInput
from . import options
from .context import Context, pass_ctx


@click.group()
def memory() -> None:
    """Read the memory store."""


@memory.command("show")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="Day to show (default: today, UTC).")
@click.option("--last", type=int, default=0, help="Show only the last N entries.")
@options.json()
@pass_ctx
def memory_show(ctx: Context, day: str | None, last: int, as_json: bool) -> None:
    """Show the daily memory entries of one day, parsed back from daily/YYYY-MM-DD.md."""
    try:
        date = dt.date.fromisoformat(day) if day else dt.datetime.now(dt.UTC).date()
    except ValueError:
        raise BadInput(f"bad date {day!r}: use YYYY-MM-DD") from None
    entries = ctx.store.read_daily(date)
    if last:
        entries = entries[-last:]
    if as_json:
        click.echo(json.dumps([report.entry_json(e) for e in entries], indent=2))
        return
    if not entries:
        click.echo(f"no daily memory for {date.isoformat()} in {ctx.store.root}")
        return
    click.echo(f"{ctx.store.path(ctx.store.daily_relpath(date))}\n")
    for entry in entries:
        click.echo(entry.to_markdown().rstrip() + "\n")
