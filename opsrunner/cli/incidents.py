"""`opsrunner incidents list|show|ack|resolve`: the incident records (ai-memory/incidents/)."""

from __future__ import annotations

import json
from collections.abc import Callable

import click

from .. import report
from ..incidents import Incident, IncidentError, IncidentStore
from ..settings import BadInput
from . import options
from .context import Context, pass_ctx


@click.group()
def incidents() -> None:
    """List, show, acknowledge and resolve incident records (ai-memory/incidents/)."""


@incidents.command("list")
@click.option("--status", type=click.Choice(["open", "acknowledged", "resolved", "active"]), help="Filter.")
@options.json()
@pass_ctx
def incidents_list(ctx: Context, status: str | None, as_json: bool) -> None:
    """All incidents, oldest first."""
    found = IncidentStore(ctx.store).all()
    if status == "active":
        found = [i for i in found if i.active]
    elif status:
        found = [i for i in found if i.status == status]
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in found], indent=2))
    elif found:
        headers = ["ID", "STATUS", "ESCALATED", "HOST", "SERVICE", "CHECK", "OPENED", "UPDATED"]
        click.echo(report.table(headers, report.incident_rows(found)))
    else:
        click.echo("no incidents")


def _incident_action(action: Callable[[], Incident]) -> Incident:
    """An unknown id or a transition that makes no sense is bad input (exit 2)."""
    try:
        return action()
    except IncidentError as exc:
        raise BadInput(str(exc)) from None


@incidents.command("show")
@click.argument("incident_id")
@options.json()
@pass_ctx
def incidents_show(ctx: Context, incident_id: str, as_json: bool) -> None:
    """One incident record with its timeline, diagnostics and debugging notes."""
    incident = _incident_action(lambda: IncidentStore(ctx.store).get(incident_id))
    click.echo(json.dumps(incident.to_dict(), indent=2) if as_json else incident.to_markdown())


@incidents.command("ack")
@click.argument("incident_id")
@click.option("--note", default="", help="Who is on it, what is known.")
@pass_ctx
def incidents_ack(ctx: Context, incident_id: str, note: str) -> None:
    """Acknowledge an open incident."""
    incident = _incident_action(lambda: IncidentStore(ctx.store).acknowledge(incident_id, note))
    click.echo(f"{incident.id}: {incident.status}")


@incidents.command("resolve")
@click.argument("incident_id")
@click.option("--cause", default="", help="What caused it.")
@click.option("--resolution", default="", help="What fixed it.")
@pass_ctx
def incidents_resolve(ctx: Context, incident_id: str, cause: str, resolution: str) -> None:
    """Resolve an incident by hand."""
    incident = _incident_action(lambda: IncidentStore(ctx.store).resolve(incident_id, cause, resolution))
    click.echo(f"{incident.id}: {incident.status}")
