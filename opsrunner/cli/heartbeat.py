"""`opsrunner heartbeat`: check every service and host, keep the incidents, restart within bounds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .. import report
from ..heartbeat import HeartbeatHooks, run_lock
from . import options
from .context import Context, end_on_config_error, execute, pass_ctx, playbook_request


@click.command()
@options.inventory()
@options.limit()
@click.option("--no-remediate", is_flag=True, help="Only report: restart nothing.")
@click.option(
    "--junit", "junit_file", metavar="FILE", help="Write JUnit XML: one testcase per host and probe."
)
@options.extra_vars()
@options.json()
@pass_ctx
def heartbeat(
    ctx: Context,
    inventory: str | None,
    limit: str | None,
    no_remediate: bool,
    junit_file: str | None,
    extra_vars: tuple[str, ...],
    as_json: bool,
) -> None:
    """Check every service and host; open, escalate and resolve incidents; restart within bounds.

    Exit 0 healthy, 1 unhealthy, 2 configuration error, 3 unreachable host(s).
    """
    variables = options.parse_extra_vars(extra_vars)
    if no_remediate:
        variables["heartbeat_remediate"] = False
    request = playbook_request(ctx, "heartbeat.yml", inventory=inventory, limit=limit, extra_vars=variables)
    with run_lock(ctx.store):  # the intake's assessments wait for it, and it for them
        outcome = execute(ctx, request, as_json)
    watch = outcome.hooks.get(HeartbeatHooks)
    record = outcome.record
    if junit_file:
        Path(junit_file).write_text(report.junit_xml(watch.hosts))
    checks = [
        dict(zip(("host", "service", "status", "detail"), row, strict=True))
        for row in report.heartbeat_rows(watch.hosts)
    ]
    end_on_config_error(outcome, as_json, {"healthy": False, "checks": checks})
    code = 3 if watch.unreachable() else record.exit_code
    if as_json:
        payload = report.record_json(record, outcome.artifact_dir)
        payload["exit_code"] = code
        # A failed task the probes did not see still makes the run unhealthy.
        payload["healthy"] = code == 0
        payload["checks"] = checks
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        click.echo(report.heartbeat_table(watch.hosts))
        for failure in record.failures:
            click.echo(f"  ! {failure.describe()}")
        for detail in record.details:
            click.echo(f"  - {detail}")
        click.echo(f"heartbeat: {'healthy' if code == 0 else 'UNHEALTHY'} (exit {code}), run {record.run_id}")
    sys.exit(code)
