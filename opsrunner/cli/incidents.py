"""`opsrunner incidents list|show|open|ack|note|ask|answer|resolve`: incident records (ai-memory/incidents/).

Agents and people report and answer here; every subcommand takes --json (errors too: `{"error": ...}`)."""

from __future__ import annotations

import json
from collections.abc import Callable

import click

from .. import report
from ..incidents import CATEGORIES, STATUSES, Incident, IncidentError, IncidentStore
from ..reports import SEVERITIES
from ..settings import BadInput
from . import options
from .context import Context, pass_ctx


@click.group()
def incidents() -> None:
    """List, show, acknowledge and resolve incident records (ai-memory/incidents/)."""


@incidents.command("list")
@click.option("--status", type=click.Choice([*STATUSES, "active"]), help="Filter.")
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


def _changed(incident: Incident, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(incident.to_dict(), indent=2))
    else:
        click.echo(f"{incident.id}: {incident.status}")


def by_option(help_text: str = "Who does it (a person's or an agent's name).") -> Callable:
    return click.option("--by", default="operator", show_default=True, help=help_text)


@incidents.command("open")
@click.option("--host", required=True, help="The inventory host.")
@click.option("--service", required=True, help="The catalogue service ('host' for the host itself).")
@click.option("--check", default="reported", show_default=True, help="What failed (joins that incident).")
@click.option("--summary", required=True, help="One line: what is wrong.")
@click.option("--severity", type=click.Choice(SEVERITIES), default="critical", show_default=True)
@click.option("--category", type=click.Choice(CATEGORIES), default="ops", show_default=True,
              help="security pages the security route at once; code opens a developers' ticket.")  # fmt: skip
@by_option("Who reports it.")
@options.inventory()
@options.json()
@pass_ctx
def incidents_open(
    ctx: Context,
    host: str,
    service: str,
    check: str,
    summary: str,
    severity: str,
    category: str,
    by: str,
    inventory: str | None,
    as_json: bool,
) -> None:
    """Report a problem: opens the incident of HOST + SERVICE + CHECK, or joins the one already open.

    It pages as the inventory's paging policy says (aitbc_paging; read from the inventory, -i)."""
    from ..triage import firsthand_report, take_report

    report = firsthand_report(
        "manual", by, host=host, service=service, check=check, summary=summary, severity=severity,
        category=category,
    )  # fmt: skip
    triage = take_report(ctx.store, report)
    assert triage is not None  # a firing report always lands on an incident
    _respond(ctx, inventory, triage.kind, triage.incident, triage.text)
    if as_json:
        click.echo(json.dumps({"kind": triage.kind, **triage.incident.to_dict()}, indent=2))
    else:
        click.echo(f"{triage.incident.id}: {triage.kind} ({triage.incident.status})")


def _respond(ctx: Context, inventory: str | None, kind: str, incident: Incident, text: str) -> None:
    """Pages and tickets for a change made from the command line, with the inventory's policy."""
    from ..respond import respond_from_inventory

    for line in respond_from_inventory(ctx.settings, ctx.inventory_path(inventory), kind, incident, text):
        click.echo(f"  - {line}", err=True)


@incidents.command("ack")
@click.argument("incident_id")
@click.option("--note", default="", help="Who is on it, what is known.")
@by_option()
@options.json()
@pass_ctx
def incidents_ack(ctx: Context, incident_id: str, note: str, by: str, as_json: bool) -> None:
    """Acknowledge an incident: a person (or agent) has it; reminders stop."""
    incident = _incident_action(lambda: IncidentStore(ctx.store).acknowledge(incident_id, note, by=by))
    _changed(incident, as_json)


@incidents.command("note")
@click.argument("incident_id")
@click.argument("text")
@by_option()
@options.json()
@pass_ctx
def incidents_note(ctx: Context, incident_id: str, text: str, by: str, as_json: bool) -> None:
    """Add a line to an incident's timeline."""
    incident = _incident_action(lambda: IncidentStore(ctx.store).add_note(incident_id, text, by=by))
    _changed(incident, as_json)


@incidents.command("ask")
@click.argument("incident_id")
@click.argument("question")
@by_option()
@options.inventory()
@options.json()
@pass_ctx
def incidents_ask(
    ctx: Context, incident_id: str, question: str, by: str, inventory: str | None, as_json: bool
) -> None:
    """Put an incident in needs-guidance: a person is paged, its remediation pauses until `answer`."""
    incident = _incident_action(lambda: IncidentStore(ctx.store).ask(incident_id, question, by=by))
    _respond(ctx, inventory, "needs-guidance", incident, f"{incident.id} needs guidance: {question}")
    _changed(incident, as_json)


@incidents.command("answer")
@click.argument("incident_id")
@click.argument("text")
@by_option()
@options.json()
@pass_ctx
def incidents_answer(ctx: Context, incident_id: str, text: str, by: str, as_json: bool) -> None:
    """Answer the question of a needs-guidance incident; its remediation resumes."""
    incident = _incident_action(lambda: IncidentStore(ctx.store).answer(incident_id, text, by=by))
    _changed(incident, as_json)


@incidents.command("resolve")
@click.argument("incident_id")
@click.option("--cause", default="", help="What caused it.")
@click.option("--resolution", default="", help="What fixed it.")
@by_option()
@options.inventory()
@options.json()
@pass_ctx
def incidents_resolve(
    ctx: Context,
    incident_id: str,
    cause: str,
    resolution: str,
    by: str,
    inventory: str | None,
    as_json: bool,
) -> None:
    """Resolve an incident by hand (pages and tickets by the inventory's policy)."""
    store = IncidentStore(ctx.store)
    incident = _incident_action(lambda: store.resolve(incident_id, cause, resolution, by=by))
    _respond(ctx, inventory, "resolved", incident, f"{incident.id} resolved by {by}: {incident.summary}")
    _changed(incident, as_json)
