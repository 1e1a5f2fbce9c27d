"""`opsrunner env sync`: the environment knowledge (ai-memory/knowledge/environment.md)."""

from __future__ import annotations

import click

from . import options
from .context import Context, execute, finish, pass_ctx, playbook_request


@click.group()
def env() -> None:
    """The environment knowledge (ai-memory/knowledge/environment.md)."""


@env.command("sync")
@options.inventory()
@options.check("Report whether it would change; write nothing.")
@options.json()
@pass_ctx
def env_sync(ctx: Context, inventory: str | None, check: bool, as_json: bool) -> None:
    """Render knowledge/environment.md from the inventory: hosts, services, ports, URLs, health checks,
    backup roots, schedules, and the names (never the values) of environment variables."""
    request = playbook_request(
        ctx,
        "env_sync.yml",
        inventory=inventory,
        check=check,
        diff=check,
        extra_vars={"env_sync_memory_dir": str(ctx.settings.memory_dir)},
    )
    outcome = execute(ctx, request, as_json)
    path = ctx.settings.memory_dir / "knowledge" / "environment.md"
    changed = outcome.record.totals().changed > 0
    if not as_json:
        click.echo(
            f"{path}: {'would change' if check and changed else 'changed' if changed else 'unchanged'}"
        )
    finish(outcome, as_json, {"path": str(path), "changed": changed})
