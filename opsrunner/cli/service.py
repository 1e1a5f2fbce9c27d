"""`opsrunner service ACTION SERVICE`: start, stop, restart or show one service of the catalogue."""

from __future__ import annotations

import click

from .. import report
from ..holds import Holds
from ..runner import RunRequest
from . import changes, options
from .context import Context, execute, finish, pass_ctx, playbook_request, reject_unknown_service

STATES = {"start": "started", "stop": "stopped", "restart": "restarted", "status": "status"}


@click.command()
@click.argument("action", type=click.Choice(["start", "stop", "restart", "status"]))
@click.argument("service")
@options.inventory()
@options.limit()
@options.json()
@pass_ctx
def service(
    ctx: Context, action: str, service: str, inventory: str | None, limit: str | None, as_json: bool
) -> None:
    """Start, stop, restart or show one SERVICE of the catalogue on every host (or --limit). A stop is a
    change: the policy (ops-policy.yml) may want a plan for it; it is announced, in a maintenance window."""
    policy = None
    if action == "stop":
        hint = changes.plan_command("service", "stop", service, inventory=inventory, limit=limit)
        policy = changes.check_policy(ctx, inventory, "service-stop", hint)
    request = playbook_request(
        ctx,
        "service.yml",
        inventory=inventory,
        limit=limit,
        extra_vars={"service_name": service, "service_state": STATES[action]},
        event=f"service {action}",
    )
    if policy is None:
        run_service(ctx, request, as_json)
        return
    with changes.change(
        ctx,
        policy,
        "service-stop",
        f"service stop {service}",
        inventory=inventory,
        limit=limit,
        services=[service],
    ):
        run_service(ctx, request, as_json)


def run_service(ctx: Context, request: RunRequest, as_json: bool) -> None:
    outcome = execute(ctx, request, as_json)
    reject_unknown_service(outcome)
    # The module's warnings (systemd: a crash it repaired) are the only sign of some failures: show them.
    warnings = [f"{r.host}: {w}" for r in outcome.record.results for w in r.result.get("warnings") or []]
    if not as_json:
        rows = report.service_rows(outcome.record)
        if rows:
            click.echo(
                report.table(["HOST", "SERVICE", "BACKEND", "STATE", "PID", "UPTIME_S", "CHANGED"], rows)
            )
        for warning in warnings:
            click.echo(f"  warning: {warning}")
    held = Holds(ctx.store).all()  # after the run: a stop has just held it, a start released it
    services = [
        {
            "host": r.host,
            **r.result["service"],
            "held": r.result["service"].get("name") in held.get(r.host, {}),
        }
        for r in outcome.record.results
        if isinstance(r.result.get("service"), dict)
    ]
    if not as_json and request.extra_vars.get("service_state") == "status":  # a stop or start says so itself
        for entry in services:
            if entry["held"]:
                hold = held[entry["host"]][entry["name"]]
                click.echo(
                    f"  {entry['host']}: {entry['name']} {hold.describe()}; the heartbeat leaves it stopped"
                )
    finish(outcome, as_json, {"services": services, "warnings": warnings})
