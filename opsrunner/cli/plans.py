"""`opsrunner plan ACTION ...`, `approve`, `plans list|show` and `apply`: changes under the policy.

The work is in opsrunner/plans.py (the MCP server calls it too); this module parses and prints.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import plans as planning
from .. import report
from ..memory import atomic_write, format_time
from ..plans import Plan, PlanStore
from ..runner import RunOutcome
from . import options
from .context import Context, finish, pass_ctx
from .deploy import releases_after

USER_ENV = "OPSRUNNER_USER"


def default_name() -> str:
    """Who is acting when --by is not given: $OPSRUNNER_USER, else the login name."""
    return os.environ.get(USER_ENV) or getpass.getuser()


def by_option(help_text: str, required: bool = False) -> Callable[[Any], Any]:
    return click.option("--by", metavar="NAME", required=required, help=help_text)


def junit_option() -> Callable[[Any], Any]:
    return click.option("--junit", metavar="FILE", help="Write a JUnit report: one testcase per host.")


# -- plan ------------------------------------------------------------------------------------------


@click.group()
def plan() -> None:
    """Run a change in check and diff mode and write it down as a plan to approve and apply."""


def plan_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for decorate in reversed(
        (
            options.inventory(),
            options.limit(),
            by_option("Who proposes the plan (default $OPSRUNNER_USER or the login name)."),
            junit_option(),
            options.json(),
        )
    ):
        command = decorate(command)
    return command


def propose(
    ctx: Context,
    action: str,
    args: dict[str, Any],
    inventory: str | None,
    limit: str | None,
    by: str | None,
    junit: str | None,
    as_json: bool,
) -> None:
    inv = ctx.inventory_path(inventory)
    made = planning.make_plan(ctx.settings, ctx.store, action, args, inv, limit, by or default_name())
    path = ctx.store.path(planning.PLANS_DIR, f"{made.id}.md")
    needed = planning.approval_required(planning.load_policy(made.inventory), made)
    exit_code = int(made.check.get("exit_code") or 0)
    if junit:
        write_junit(junit, f"plan {made.action}", made, None)
    if as_json:
        payload = {**made.to_dict(), "path": str(path), "approval_required": needed, "exit_code": exit_code}
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        click.echo(plan_text(made))
        click.echo(f"written: {path}")
        if needed:
            click.echo(f"the policy needs an approval: opsrunner approve {made.id} --by NAME")
        else:
            click.echo(f"no approval needed by the policy: opsrunner apply {made.id}")
    sys.exit(exit_code)


@plan.command("deploy")
@click.argument("version")
@click.option("--from", "artifact", required=True, metavar="ARTIFACT", help="Release tarball or folder.")
@click.option("--service", default="coordinator-api", show_default=True, help="The service to deploy.")
@click.option("--serial", default="1", show_default=True, metavar="N", help="Hosts per batch (N or N%).")
@options.extra_vars()
@plan_options
@pass_ctx
def plan_deploy(
    ctx: Context,
    version: str,
    artifact: str,
    service: str,
    serial: str,
    extra_vars: tuple[str, ...],
    **common: Any,
) -> None:
    """Plan a deploy of release VERSION (the arguments of `opsrunner deploy`)."""
    args = {
        "version": version,
        "artifact": artifact,
        "service": service,
        "serial": serial,
        "extra_vars": options.parse_extra_vars(extra_vars),
    }
    propose(ctx, "deploy", args, **common)


@plan.command("rollback")
@click.option("--to", "version", metavar="VERSION", help="A release still on the hosts (default: previous).")
@click.option("--service", default="coordinator-api", show_default=True, help="The service to roll back.")
@plan_options
@pass_ctx
def plan_rollback(ctx: Context, version: str | None, service: str, **common: Any) -> None:
    """Plan a rollback (the arguments of `opsrunner rollback`)."""
    propose(ctx, "rollback", {"version": version, "service": service}, **common)


@plan.command("restore")
@click.argument("set_name", metavar="SET")
@click.option("--confirm", is_flag=True, help="The restore replaces live data (as `opsrunner restore`).")
@click.option("--dest", metavar="DIR", help="Restore into DIR on each host instead.")
@click.option("--service", metavar="S", help="Restore only this service's data.")
@plan_options
@pass_ctx
def plan_restore(
    ctx: Context, set_name: str, confirm: bool, dest: str | None, service: str | None, **common: Any
) -> None:
    """Plan a restore of backup set SET (the arguments of `opsrunner restore`)."""
    args = {"set": set_name, "confirm": confirm, "dest": dest, "service": service}
    propose(ctx, "restore", args, **common)


@plan.command("config")
@options.extra_vars()
@plan_options
@pass_ctx
def plan_config(ctx: Context, extra_vars: tuple[str, ...], **common: Any) -> None:
    """Plan a config apply (playbooks/config.yml): each service's environment file, with its diff."""
    propose(ctx, "config", {"extra_vars": options.parse_extra_vars(extra_vars)}, **common)


@plan.command("devnet-reset")
@options.extra_vars()
@plan_options
@pass_ctx
def plan_devnet_reset(ctx: Context, extra_vars: tuple[str, ...], **common: Any) -> None:
    """Plan a devnet reset (playbooks/devnet_reset.yml): the chain backed up, then a new genesis. An applied
    plan is its confirmation."""
    propose(ctx, "devnet-reset", {"extra_vars": options.parse_extra_vars(extra_vars)}, **common)


@plan.command("packages")
@click.argument("names", nargs=-1, required=True)
@plan_options
@pass_ctx
def plan_packages(ctx: Context, names: tuple[str, ...], **common: Any) -> None:
    """Plan installing packages NAME... (playbooks/packages.yml)."""
    propose(ctx, "packages", {"names": list(names)}, **common)


@plan.command("service")
@click.argument("action", type=click.Choice(sorted(planning.SERVICE_ACTIONS)))
@click.argument("service")
@plan_options
@pass_ctx
def plan_service(ctx: Context, action: str, service: str, **common: Any) -> None:
    """Plan starting, stopping or restarting one SERVICE (the arguments of `opsrunner service`)."""
    propose(ctx, "service", {"action": action, "service": service}, **common)


# -- approve, plans --------------------------------------------------------------------------------


@click.command()
@click.argument("plan_id", metavar="PLAN")
@by_option("Who approves (the policy's approvers list says who may).", required=True)
@click.option("--note", metavar="TEXT", default="", help="Why, or under what condition.")
@options.json()
@pass_ctx
def approve(ctx: Context, plan_id: str, by: str, note: str, as_json: bool) -> None:
    """Approve PLAN, for the policy's approval_ttl (24h unless it says otherwise)."""
    found = PlanStore(ctx.store).get(plan_id)
    done = planning.approve(ctx.store, planning.load_policy(found.inventory), plan_id, by, note)
    if as_json:
        click.echo(json.dumps(done.to_dict(), indent=2, sort_keys=True))
    else:
        expires = format_time(done.expires) if done.expires else "-"
        click.echo(f"{done.id} approved by {by} until {expires}: opsrunner apply {done.id}")


@click.group()
def plans() -> None:
    """The plans in the memory store (plans/)."""


@plans.command("list")
@click.option("--status", type=click.Choice(planning.STATUSES), help="Only plans in this status.")
@options.json()
@pass_ctx
def plans_list(ctx: Context, status: str | None, as_json: bool) -> None:
    """Every plan: id, status, action, who proposed it, approvals, expiry."""
    found = PlanStore(ctx.store).list(status)
    if as_json:
        click.echo(json.dumps({"plans": [p.to_dict() for p in found]}, indent=2, sort_keys=True))
        return
    if not found:
        click.echo("no plans")
        return
    headers = ["PLAN", "STATUS", "ACTION", "CREATED", "BY", "APPROVED BY", "EXPIRES"]
    rows = [
        [
            p.id,
            p.status,
            p.title(),
            format_time(p.created),
            p.created_by,
            ", ".join(a["by"] for a in p.approvals) or "-",
            format_time(p.expires) if p.expires else "-",
        ]
        for p in found
    ]
    click.echo(report.table(headers, rows))


@plans.command("show")
@click.argument("plan_id", metavar="PLAN")
@options.json()
@pass_ctx
def plans_show(ctx: Context, plan_id: str, as_json: bool) -> None:
    """One plan: its Markdown (or its record with --json)."""
    found = PlanStore(ctx.store).get(plan_id)
    if as_json:
        click.echo(json.dumps(found.to_dict(), indent=2, sort_keys=True))
    else:
        click.echo(found.to_markdown(), nl=False)


# -- apply -----------------------------------------------------------------------------------------


@click.command("apply")
@click.argument("plan_id", metavar="PLAN")
@by_option("Who applies (default $OPSRUNNER_USER or the login name).")
@click.option("--override-freeze", is_flag=True, help="Apply inside a freeze window (needs --reason).")
@click.option(
    "--reason", metavar="TEXT", default="", help="Why the freeze is overridden (recorded, announced)."
)
@junit_option()
@options.json()
@pass_ctx
def apply_command(
    ctx: Context,
    plan_id: str,
    by: str | None,
    override_freeze: bool,
    reason: str,
    junit: str | None,
    as_json: bool,
) -> None:
    """Apply PLAN: refused (exit 2, nothing changed) when the policy needs an approval it lacks, when the
    approval expired, or when its inputs (inventory, vars, policy, collection, artifact) changed since."""
    if override_freeze and not reason.strip():
        raise click.UsageError("--override-freeze needs --reason TEXT")
    if reason and not override_freeze:
        raise click.UsageError("--reason goes with --override-freeze")
    done, outcome = planning.apply(
        ctx.settings, ctx.store, plan_id, by or default_name(), override_freeze, reason
    )
    if junit:
        write_junit(junit, f"apply {done.action}", done, outcome)
    unapproved = not done.approvals
    if not as_json:
        click.echo(f"{done.id}: {done.title()}: {done.status}")
        if unapproved:
            click.echo(f"applied without an approval: the policy asks for none for {done.action}")
    extra: dict[str, Any] = {"plan": done.to_dict(), "approved": not unapproved}
    if done.action in ("deploy", "rollback"):  # what `opsrunner deploy --json` says afterwards, too
        extra["releases"] = releases_after(outcome)
    finish(outcome, as_json, extra)


# -- output ----------------------------------------------------------------------------------------


def plan_text(made: Plan) -> str:
    lines = [f"{made.id}: {made.title()} ({made.status}; check run {made.check.get('outcome')})"]
    for host in made.hosts:
        state = (made.check.get("hosts") or {}).get(host) or {}
        tasks = [c["task"] for c in made.changes if c["host"] == host]
        trouble = " UNREACHABLE" if state.get("unreachable") else " FAILED" if state.get("failed") else ""
        lines.append(f"  {host}:{trouble} {len(tasks)} task(s) would change")
        lines += [f"    - {task}" for task in tasks]
    lines += [f"  ! {failure['message']}" for failure in made.check.get("failures") or []]
    lines.append(f"  inputs hash {made.inputs_hash}")
    return "\n".join(lines)


def write_junit(path: str, name: str, made: Plan, outcome: RunOutcome | None) -> None:
    """The check run's hosts for a plan, the real run's for an apply."""
    if outcome is None:
        summary, changes = made.check, made.changes
    else:
        record = outcome.record
        summary, changes = planning.check_summary(record, record.exit_code), []
    atomic_write(Path(path).absolute(), planning.junit_xml(name, summary, changes), mode=0o644)
