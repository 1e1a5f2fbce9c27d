"""`opsrunner run PLAYBOOK`: any playbook, recorded in memory."""

from __future__ import annotations

import click

from ..hooks import RUN
from . import options
from .context import Context, execute, finish, pass_ctx, playbook_request


@click.command()
@click.argument("playbook")
@options.inventory()
@options.limit()
@click.option("--check", is_flag=True, help="Dry run: report what would change.")
@click.option("--diff", is_flag=True, help="Show file differences.")
@options.extra_vars()
@click.option("-v", "--verbose", is_flag=True, help="Stream Ansible's (redacted) output.")
@options.json()
@pass_ctx
def run(
    ctx: Context,
    playbook: str,
    inventory: str | None,
    limit: str | None,
    check: bool,
    diff: bool,
    extra_vars: tuple[str, ...],
    verbose: bool,
    as_json: bool,
) -> None:
    """Run PLAYBOOK (a path, or a name under playbooks/) and record it in memory."""
    # Always the plain run's event, whatever the playbook: `opsrunner heartbeat` is the heartbeat.
    request = playbook_request(
        ctx,
        playbook,
        inventory=inventory,
        limit=limit,
        check=check,
        diff=diff,
        extra_vars=options.parse_extra_vars(extra_vars),
        event=RUN,
    )
    finish(execute(ctx, request, as_json, verbose), as_json)
