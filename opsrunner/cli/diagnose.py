"""`opsrunner diagnose HOST [SERVICE]`: an incident bundle of one host (built by opsrunner/diagnose.py)."""

from __future__ import annotations

import json
import sys

import click

from .. import diagnose as bundles
from .. import report
from . import options
from .context import Context, execute, pass_ctx, playbook_request


@click.command("diagnose")
@click.argument("host")
@click.argument("service", required=False, default="")
@options.inventory()
@click.option(
    "-n",
    "--lines",
    "log_lines",
    type=click.IntRange(0, 10000),
    default=bundles.DEFAULT_LOG_LINES,
    show_default=True,
    help="Log lines per service.",
)
@options.json()
@pass_ctx
def diagnose(
    ctx: Context, host: str, service: str, inventory: str | None, log_lines: int, as_json: bool
) -> None:
    """Collect an incident bundle on HOST: load, CPU, memory, disks, listening sockets and their processes,
    and for SERVICE (default: every service) its processes (RSS, open files), last log lines and restarts.
    Reads /proc: no lsof, netstat or ss needed. The bundle goes to ai-memory/knowledge/diagnostics/ and is
    attached to the host's open incidents. Exit 2 for an unknown host or service, 3 if HOST is unreachable."""
    request = playbook_request(
        ctx,
        "diagnose.yml",
        inventory=inventory,
        limit=host,
        extra_vars={bundles.SERVICE_VAR: service, "diagnose_log_lines": log_lines},
    )
    bundles.check_host(host, request.inventory)
    outcome = execute(ctx, request, as_json)
    record = outcome.record
    bundles.check_input(record, host, request.inventory)
    taken = outcome.hooks.get(bundles.DiagnoseHooks).bundles
    if as_json:
        payload = report.record_json(record, outcome.artifact_dir)
        payload["bundles"] = [bundle.to_json() for bundle in taken]
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        click.echo(bundles.render(taken, ctx.store.root))
        click.echo(report.summary_text(record, outcome.artifact_dir))
    sys.exit(record.exit_code)
