"""`opsrunner demo up|down|status`: the demo AITBC stack (stand-in services) on the inventory's hosts."""

from __future__ import annotations

import click

from .. import report
from . import options
from .context import Context, execute, finish_rows, pass_ctx, playbook_request


def demo_command(action: str, help_text: str) -> click.Command:
    """One action of playbooks/demo.yml as a command; all three print the same service table."""

    @click.command(action, help=help_text)
    @options.inventory()
    @options.limit()
    @options.json()
    @pass_ctx
    def command(ctx: Context, inventory: str | None, limit: str | None, as_json: bool) -> None:
        request = playbook_request(
            ctx,
            "demo.yml",
            inventory=inventory,
            limit=limit,
            extra_vars={"demo_action": action},
            event=f"demo {action}",
        )
        outcome = execute(ctx, request, as_json)
        rows = report.demo_rows(outcome.record)
        finish_rows(outcome, as_json, "services", rows, report.demo_table(rows))

    return command


@click.group()
def demo() -> None:
    """The demo AITBC stack (stand-in services) on the inventory's hosts."""


demo.add_command(demo_command("up", "Install and start the demo stack, then show its status."))
demo.add_command(demo_command("down", "Stop every demo service."))
demo.add_command(demo_command("status", "Show each demo service with its pid, port and health."))
