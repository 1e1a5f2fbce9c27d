"""`opsrunner backup`, `backups list`, `verify` and `restore`: backup sets on the hosts."""

from __future__ import annotations

from typing import Any

import click

from .. import report
from ..recorder import RunRecord
from ..runner import RunRequest
from ..settings import BadInput
from . import changes, options
from .context import Context, execute, finish, finish_rows, pass_ctx, playbook_request, reject_unknown_service


@click.command()
@click.option("--service", metavar="S", help="Back up only this service's data.")
@options.inventory()
@options.limit()
@options.check("Dry run: check the sources, write nothing.")
@options.json()
@pass_ctx
def backup(
    ctx: Context, service: str | None, inventory: str | None, limit: str | None, check: bool, as_json: bool
) -> None:
    """Take a backup set on every host (SQLite online backup, encrypted key files, Redis RDB), verify it
    with a restore drill, apply retention, and copy it to the controller's backup store."""
    request = playbook_request(
        ctx,
        "backup.yml",
        inventory=inventory,
        limit=limit,
        check=check,
        extra_vars={"backup_service": service} if service else {},
    )
    outcome = execute(ctx, request, as_json)
    reject_unknown_service(outcome)
    sets = {
        r.host: {k: r.result["backup"].get(k) for k in ("set", "path", "bytes", "label")}
        for r in outcome.record.results_for("aitbc.ops.backup")
        if not r.failed and r.result.get("backup")
    }
    idle = idle_hosts(outcome.record, "aitbc.ops.backup")
    if idle and not as_json:
        click.echo(
            f"nothing to back up on {', '.join(idle)}: no service there has databases or backup entries"
        )
    finish(outcome, as_json, {"sets": sets, "nothing_to_back_up": idle})


def idle_hosts(record: RunRecord, action: str) -> list[str]:
    """Hosts the role let go early (no sources): they ran fine and never reached ``action``."""
    reached = {r.host for r in record.results_for(action) if not r.result.get("skipped")}
    return sorted(
        host
        for host, stats in record.hosts.items()
        if host not in reached and not (stats.failed or stats.unreachable)
    )


@click.group()
def backups() -> None:
    """Backup sets on the hosts."""


@backups.command("list")
@options.inventory()
@options.limit()
@options.json()
@pass_ctx
def backups_list(ctx: Context, inventory: str | None, limit: str | None, as_json: bool) -> None:
    """Every host's backup sets: path, age, size, verified?"""
    request = playbook_request(ctx, "backups_list.yml", inventory=inventory, limit=limit)
    outcome = execute(ctx, request, as_json)
    rows = report.backup_set_rows(outcome.record)
    finish_rows(outcome, as_json, "sets", rows, report.backup_table(rows))


@click.command()
@click.argument("set_name", metavar="[SET]", default="newest")
@options.inventory()
@options.limit()
@click.option("--no-drill", is_flag=True, help="Checksums and integrity only, no restore drill.")
@options.json()
@pass_ctx
def verify(
    ctx: Context, set_name: str, inventory: str | None, limit: str | None, no_drill: bool, as_json: bool
) -> None:
    """Verify backup set SET (a name, newest, unverified or all; default newest) on every host: sha256,
    integrity_check, and a restore drill. A failure opens an incident. Exit 1 if any set fails."""
    variables: dict[str, Any] = {"backup_verify_set": set_name}
    if no_drill:
        variables["backup_drill"] = False
    request = playbook_request(
        ctx, "backup_verify.yml", inventory=inventory, limit=limit, extra_vars=variables
    )
    outcome = execute(ctx, request, as_json)
    rows = report.verify_rows(outcome.record)
    idle = idle_hosts(outcome.record, "aitbc.ops.backup_verify")
    if as_json:
        finish(outcome, as_json, {"verified": rows, "nothing_to_verify": idle})
    if idle:
        click.echo(f"nothing to verify on {', '.join(idle)}: no service there has databases or backups")
    for row in rows:
        click.echo(
            f"{row['host']}  {row['set']}  {'ok' if row['ok'] else 'FAILED'}  ({row['checks']} checks)"
        )
        for failed in row["failed"]:
            click.echo(f"    ! {failed}")
    finish(outcome, as_json)


# The role's tasks whose aitbc.ops.restore result is the restore itself (the others plan or roll back).
RESTORE_TASKS = ("Put the data back", "Put the data into the side folder")


@click.command()
@click.argument("set_name", metavar="SET")
@click.option(
    "--confirm",
    is_flag=True,
    help="Required to restore over live data (and to replace paths that exist under --dest).",
)
@click.option(
    "--dest",
    metavar="DIR",
    help="Restore into DIR on each host instead (each item at its path relative to /), to inspect it: "
    "live data and services are untouched, so no --confirm is needed.",
)
@click.option("--service", metavar="S", help="Restore only this service's data.")
@options.inventory()
@options.limit()
@changes.override_freeze()
@options.json()
@pass_ctx
def restore(
    ctx: Context,
    set_name: str,
    confirm: bool,
    dest: str | None,
    service: str | None,
    inventory: str | None,
    limit: str | None,
    override_freeze: bool,
    reason: str,
    as_json: bool,
) -> None:
    """Restore backup set SET (a name, or newest) on every host (or --limit), one host at a time: verify
    the set, take a fresh backup, stop the services that use the data, put it back atomically, start them
    behind the health gate; roll back to the fresh backup if the gate fails. Writes a decision record.

    With --dest DIR, a side restore: the set's data goes under DIR (DIR/var/lib/.../chain.db), nothing
    live is stopped or replaced. A DIR that is or holds a live target is refused.

    Under a policy (ops-policy.yml beside the inventory) a restore over live data may need an approved
    plan, and is refused inside a freeze window unless --override-freeze --reason TEXT."""
    if dest is not None and not dest.startswith("/"):
        raise BadInput(f"--dest must be an absolute path on the hosts: {dest!r}")
    if not confirm and not dest:
        raise BadInput(
            f"refusing to restore {set_name} without --confirm (it replaces live data; --dest DIR restores "
            "beside it); nothing was changed"
        )
    variables: dict[str, Any] = {"restore_set": set_name, "restore_confirm": confirm}
    if dest:
        variables["restore_dest"] = dest
    if service:
        variables["restore_items"] = [service]
    request = playbook_request(ctx, "restore.yml", inventory=inventory, limit=limit, extra_vars=variables)
    if dest:  # a side restore leaves live data and services alone: no plan, freeze or window
        run_restore(ctx, request, as_json, dest)
        return
    hint = changes.plan_command(
        "restore",
        set_name,
        "--confirm",
        *(["--service", service] if service else []),
        inventory=inventory,
        limit=limit,
    )
    policy = changes.check_policy(ctx, inventory, "restore", hint)
    title = f"restore {set_name}" + (f" of {service}" if service else "")
    with changes.change(
        ctx,
        policy,
        "restore",
        title,
        inventory=inventory,
        limit=limit,
        services=[service] if service else [],
        reason=reason,
        override=override_freeze,
    ):
        run_restore(ctx, request, as_json, dest)


def run_restore(ctx: Context, request: RunRequest, as_json: bool, dest: str | None) -> None:
    outcome = execute(ctx, request, as_json)
    done = [
        r
        for r in outcome.record.results_for("aitbc.ops.restore")
        if not r.failed and not r.result.get("skipped") and r.task in RESTORE_TASKS
    ]
    restored = {r.host: [item.get("file") for item in r.result.get("restored") or []] for r in done}
    set_aside = {r.host: r.result["set_aside"] for r in done if r.result.get("set_aside")}
    finish(outcome, as_json, {"restored": restored, "dest": dest or "", "set_aside": set_aside})
