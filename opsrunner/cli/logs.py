"""`opsrunner logs review`: the daily log review (its hooks come from the table, by its event)."""

from __future__ import annotations

import click

from . import options
from .context import Context, execute, finish, pass_ctx, playbook_request


@click.group()
def logs() -> None:
    """Review service logs."""


@logs.command("review")
@options.inventory()
@options.limit()
@options.json()
@pass_ctx
def logs_review(ctx: Context, inventory: str | None, limit: str | None, as_json: bool) -> None:
    """Count errors and warnings per service since the last review (a cursor per log); write the summary to
    the daily memory and propose new error signatures in failures/proposed-signatures.md."""
    request = playbook_request(ctx, "logs_review.yml", inventory=inventory, limit=limit)
    finish(execute(ctx, request, as_json), as_json)
