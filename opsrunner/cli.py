"""The opsrunner command line.

Exit codes (DESIGN.md): 0 success/healthy, 1 failed/unhealthy, 2 usage or bad input, 3 unreachable
host(s), 130 interrupted. Errors are one line on stderr; OPSRUNNER_DEBUG=1 shows tracebacks.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from . import report
from .memory import MemoryStore
from .runner import Runner, RunOutcome, RunRequest
from .settings import BadInput, Settings


@dataclass
class Context:
    settings: Settings
    inventory: str | None

    def inventory_path(self, override: str | None) -> Path:
        chosen = override or self.inventory
        return Path(chosen).absolute() if chosen else self.settings.default_inventory

    @property
    def store(self) -> MemoryStore:
        return MemoryStore(self.settings.memory_dir)


pass_ctx = click.make_pass_decorator(Context)

inventory_option = click.option(
    "-i", "--inventory", "inventory", metavar="INV", help="Inventory (default: inventory/local.yml)."
)
limit_option = click.option("--limit", metavar="PATTERN", help="Limit to hosts matching PATTERN.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result.")


def parse_extra_vars(pairs: tuple[str, ...]) -> dict[str, Any]:
    """-e K=V pairs, -e '{"json": ...}' and -e @file.yml, as ansible-playbook takes them."""
    import yaml

    result: dict[str, Any] = {}
    for item in pairs:
        if item.startswith("@"):
            data = yaml.safe_load(Path(item[1:]).read_text())
        elif item.lstrip().startswith("{"):
            data = json.loads(item)
        elif "=" in item:
            key, _, value = item.partition("=")
            data = {key: value}
        else:
            raise BadInput(f"bad extra var {item!r}: use K=V, JSON or @file")
        if not isinstance(data, dict):
            raise BadInput(f"bad extra var {item!r}: not a mapping")
        result.update(data)
    return result


def execute(
    ctx: Context, request: RunRequest, as_json: bool, verbose: bool = False, prepare=None
) -> RunOutcome:
    on_event = None
    if verbose and not as_json:

        def on_event(event: dict[str, Any]) -> None:
            if event.get("stdout"):
                click.echo(event["stdout"])

    return Runner(ctx.settings, ctx.store).run(request, prepare=prepare, on_event=on_event)


def finish(outcome: RunOutcome, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    record = outcome.record
    if as_json:
        payload = report.record_json(record, outcome.artifact_dir)
        payload.update(extra or {})
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        click.echo(report.summary_text(record, outcome.artifact_dir))
    sys.exit(record.exit_code)


def finish_rows(outcome: RunOutcome, as_json: bool, key: str, rows: list[Any], table: str) -> None:
    """Finish a command that reads the hosts: its rows under `key` in --json, else the table first."""
    if not as_json:
        click.echo(table)
    finish(outcome, as_json, {key: rows})


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@inventory_option
@click.option(
    "--memory-dir",
    metavar="DIR",
    envvar="OPSRUNNER_MEMORY_DIR",
    help="Memory store root (env OPSRUNNER_MEMORY_DIR, default ./ai-memory).",
)
@click.version_option(package_name="opsrunner")
@click.pass_context
def cli(click_ctx: click.Context, inventory: str | None, memory_dir: str | None) -> None:
    """Operate the AITBC stack (or any inventory of services) with the aitbc.ops collection."""
    click_ctx.obj = Context(settings=Settings.load(memory_dir=memory_dir), inventory=inventory)


@cli.command()
@click.argument("playbook")
@inventory_option
@limit_option
@click.option("--check", is_flag=True, help="Dry run: report what would change.")
@click.option("--diff", is_flag=True, help="Show file differences.")
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="K=V", help="Extra variables.")
@click.option("-v", "--verbose", is_flag=True, help="Stream Ansible's (redacted) output.")
@json_option
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
    request = RunRequest(
        playbook=ctx.settings.playbook_path(playbook),
        inventory=ctx.inventory_path(inventory),
        limit=limit,
        check=check,
        diff=diff,
        extra_vars=parse_extra_vars(extra_vars),
    )
    finish(execute(ctx, request, as_json, verbose), as_json)


@cli.command()
@inventory_option
@limit_option
@click.option("--no-remediate", is_flag=True, help="Only report: restart nothing.")
@click.option(
    "--junit", "junit_file", metavar="FILE", help="Write JUnit XML: one testcase per host and probe."
)
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="K=V", help="Extra variables.")
@json_option
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

    Exit 0 healthy, 1 unhealthy, 3 unreachable host(s).
    """
    from .heartbeat import HeartbeatHooks

    variables = parse_extra_vars(extra_vars)
    if no_remediate:
        variables["heartbeat_remediate"] = False
    request = RunRequest(
        playbook=ctx.settings.playbook_path("heartbeat.yml"),
        inventory=ctx.inventory_path(inventory),
        limit=limit,
        extra_vars=variables,
        event="heartbeat",
    )
    hooks: list[HeartbeatHooks] = []
    outcome = execute(ctx, request, as_json, prepare=lambda recorder: hooks.append(HeartbeatHooks(recorder)))
    watch = hooks[0]
    record = outcome.record
    if junit_file:
        Path(junit_file).write_text(report.junit_xml(watch.hosts))
    code = 3 if watch.unreachable() else record.exit_code
    if as_json:
        payload = report.record_json(record, outcome.artifact_dir)
        payload["exit_code"] = code
        payload["healthy"] = watch.healthy() and not watch.unreachable()
        payload["checks"] = [
            dict(zip(("host", "service", "status", "detail"), row, strict=True))
            for row in report.heartbeat_rows(watch.hosts)
        ]
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        click.echo(report.heartbeat_table(watch.hosts))
        for detail in record.details:
            click.echo(f"  - {detail}")
        click.echo(f"heartbeat: {'healthy' if code == 0 else 'UNHEALTHY'} (exit {code}), run {record.run_id}")
    sys.exit(code)


@cli.command()
@click.argument("action", type=click.Choice(["start", "stop", "restart", "status"]))
@click.argument("service")
@inventory_option
@limit_option
@json_option
@pass_ctx
def service(
    ctx: Context, action: str, service: str, inventory: str | None, limit: str | None, as_json: bool
) -> None:
    """Start, stop, restart or show one SERVICE of the catalogue on every host (or --limit)."""
    state = {"start": "started", "stop": "stopped", "restart": "restarted", "status": "status"}[action]
    request = RunRequest(
        playbook=ctx.settings.playbook_path("service.yml"),
        inventory=ctx.inventory_path(inventory),
        limit=limit,
        extra_vars={"service_name": service, "service_state": state},
        event=f"service {action}",
    )
    outcome = execute(ctx, request, as_json)
    _unknown_service(outcome)
    if not as_json:
        rows = report.service_rows(outcome.record)
        if rows:
            click.echo(
                report.table(["HOST", "SERVICE", "BACKEND", "STATE", "PID", "UPTIME_S", "CHANGED"], rows)
            )
    finish(outcome, as_json, {"services": [r.result.get("service") for r in outcome.record.results]})


def _unknown_service(outcome: RunOutcome) -> None:
    unknown = [f for f in outcome.record.failures if f.message.startswith("unknown service:")]
    if unknown:
        raise BadInput(unknown[0].message)


@cli.command()
@click.option("--service", metavar="S", help="Back up only this service's data.")
@inventory_option
@limit_option
@click.option("--check", is_flag=True, help="Dry run: check the sources, write nothing.")
@json_option
@pass_ctx
def backup(
    ctx: Context, service: str | None, inventory: str | None, limit: str | None, check: bool, as_json: bool
) -> None:
    """Take a backup set on every host (SQLite online backup, encrypted key files, Redis RDB), verify it
    with a restore drill, apply retention, and copy it to the controller's backup store."""
    request = RunRequest(
        playbook=ctx.settings.playbook_path("backup.yml"),
        inventory=ctx.inventory_path(inventory),
        limit=limit,
        check=check,
        extra_vars={"backup_service": service} if service else {},
        event="backup",
    )
    outcome = execute(ctx, request, as_json)
    _unknown_service(outcome)
    sets = {
        r.host: {k: r.result["backup"].get(k) for k in ("set", "path", "bytes", "label")}
        for r in outcome.record.results_for("aitbc.ops.backup")
        if not r.failed and r.result.get("backup")
    }
    finish(outcome, as_json, {"sets": sets})


@cli.group()
def backups() -> None:
    """Backup sets on the hosts."""


@backups.command("list")
@inventory_option
@limit_option
@json_option
@pass_ctx
def backups_list(ctx: Context, inventory: str | None, limit: str | None, as_json: bool) -> None:
    """Every host's backup sets: path, age, size, verified?"""
    request = RunRequest(
        playbook=ctx.settings.playbook_path("backups_list.yml"),
        inventory=ctx.inventory_path(inventory),
        limit=limit,
        event="backups list",
    )
    outcome = execute(ctx, request, as_json)
    rows = report.backup_set_rows(outcome.record)
    finish_rows(outcome, as_json, "sets", rows, report.backup_table(rows))


@cli.command()
@click.argument("set_name", metavar="[SET]", default="newest")
@inventory_option
@limit_option
@click.option("--no-drill", is_flag=True, help="Checksums and integrity only, no restore drill.")
@json_option
@pass_ctx
def verify(
    ctx: Context, set_name: str, inventory: str | None, limit: str | None, no_drill: bool, as_json: bool
) -> None:
    """Verify backup set SET (a name, newest, unverified or all; default newest) on every host: sha256,
    integrity_check, and a restore drill. A failure opens an incident. Exit 1 if any set fails."""
    variables: dict[str, Any] = {"backup_verify_set": set_name}
    if no_drill:
        variables["backup_drill"] = False
    request = RunRequest(
        playbook=ctx.settings.playbook_path("backup_verify.yml"),
        inventory=ctx.inventory_path(inventory),
        limit=limit,
        extra_vars=variables,
        event="backup verify",
    )
    outcome = execute(ctx, request, as_json)
    rows = report.verify_rows(outcome.record)
    if as_json:
        finish(outcome, as_json, {"verified": rows})
    for row in rows:
        click.echo(
            f"{row['host']}  {row['set']}  {'ok' if row['ok'] else 'FAILED'}  ({row['checks']} checks)"
        )
        for failed in row["failed"]:
            click.echo(f"    ! {failed}")
    finish(outcome, as_json)


@cli.command()
@click.argument("set_name", metavar="SET")
@click.option("--confirm", is_flag=True, help="Required: the restore replaces live data.")
@click.option("--service", metavar="S", help="Restore only this service's data.")
@inventory_option
@limit_option
@json_option
@pass_ctx
def restore(
    ctx: Context,
    set_name: str,
    confirm: bool,
    service: str | None,
    inventory: str | None,
    limit: str | None,
    as_json: bool,
) -> None:
    """Restore backup set SET (a name, or newest) on every host (or --limit), one host at a time: verify
    the set, take a fresh backup, stop the services that use the data, put it back atomically, start them
    behind the health gate; roll back to the fresh backup if the gate fails. Writes a decision record."""
    if not confirm:
        raise BadInput(
            f"refusing to restore {set_name} without --confirm (it replaces live data); nothing was changed"
        )
    variables: dict[str, Any] = {"restore_set": set_name, "restore_confirm": True}
    if service:
        variables["restore_items"] = [service]
    request = RunRequest(
        playbook=ctx.settings.playbook_path("restore.yml"),
        inventory=ctx.inventory_path(inventory),
        limit=limit,
        extra_vars=variables,
        event="restore",
    )
    outcome = execute(ctx, request, as_json)
    restored = {
        r.host: [item.get("file") for item in r.result.get("restored") or []]
        for r in outcome.record.results_for("aitbc.ops.restore")
        if not r.failed and not r.result.get("skipped") and r.task == "Put the data back"
    }
    finish(outcome, as_json, {"restored": restored})


@cli.command()
@click.argument("version")
@click.option("--from", "artifact", required=True, metavar="ARTIFACT", help="Release tarball or folder.")
@click.option("--service", default="coordinator-api", show_default=True, help="The service to deploy.")
@click.option("--serial", default="1", show_default=True, metavar="N", help="Hosts per batch (N or N%).")
@inventory_option
@limit_option
@click.option("--check", is_flag=True, help="Dry run: show the plan, change nothing.")
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="K=V", help="Extra variables.")
@json_option
@pass_ctx
def deploy(
    ctx: Context,
    version: str,
    artifact: str,
    service: str,
    serial: str,
    inventory: str | None,
    limit: str | None,
    check: bool,
    extra_vars: tuple[str, ...],
    as_json: bool,
) -> None:
    """Deploy release VERSION of a service, one batch of hosts at a time: pre-deploy backup, unpack,
    migrate, switch, restart, health gate. A batch that fails its gate rolls back automatically, opens an
    incident and stops the deploy (exit 1); later batches are not touched."""
    source = Path(artifact).absolute()
    if not source.exists():
        raise BadInput(f"artifact not found: {artifact}")
    request = RunRequest(
        playbook=ctx.settings.playbook_path("deploy.yml"),
        inventory=ctx.inventory_path(inventory),
        limit=limit,
        check=check,
        extra_vars={
            **parse_extra_vars(extra_vars),
            "deploy_version": version,
            "deploy_artifact": str(source),
            "deploy_service": service,
            "deploy_serial": serial,
        },
        event="deploy",
    )
    outcome = execute(ctx, request, as_json)
    _unknown_service(outcome)
    finish(outcome, as_json, {"releases": _releases_after(outcome)})


def _releases_after(outcome: RunOutcome) -> dict[str, Any]:
    """host -> {current, previous} as the last release task of the run left it."""
    found: dict[str, Any] = {}
    for result in outcome.record.results:
        if result.action not in ("aitbc.ops.release", "aitbc.ops.release_info"):
            continue
        if not result.failed and not result.result.get("skipped") and "current" in result.result:
            found[result.host] = {k: result.result.get(k) for k in ("current", "previous")}
    return found


@cli.command()
@click.option("--to", "version", metavar="VERSION", help="A release still on the hosts (default: previous).")
@click.option("--service", default="coordinator-api", show_default=True, help="The service to roll back.")
@inventory_option
@limit_option
@json_option
@pass_ctx
def rollback(
    ctx: Context, version: str | None, service: str, inventory: str | None, limit: str | None, as_json: bool
) -> None:
    """Switch back to the recorded previous release (or --to VERSION), one host at a time, behind the
    health gate; if the gate fails, return to where it was (exit 1)."""
    variables: dict[str, Any] = {"deploy_service": service}
    if version:
        variables["deploy_version"] = version
    request = RunRequest(
        playbook=ctx.settings.playbook_path("rollback.yml"),
        inventory=ctx.inventory_path(inventory),
        limit=limit,
        extra_vars=variables,
        event="rollback",
    )
    outcome = execute(ctx, request, as_json)
    failed = [
        f.message for f in outcome.record.failures if "rollback" in f.message and "not present" in f.message
    ]
    if failed:
        raise BadInput(failed[0])
    finish(outcome, as_json, {"releases": _releases_after(outcome)})


@cli.command()
@inventory_option
@limit_option
@json_option
@pass_ctx
def releases(ctx: Context, inventory: str | None, limit: str | None, as_json: bool) -> None:
    """The current and previous release of each deployable service per host, and when it was deployed."""
    from .deploys import release_rows

    request = RunRequest(
        playbook=ctx.settings.playbook_path("releases.yml"),
        inventory=ctx.inventory_path(inventory),
        limit=limit,
        event="releases",
    )
    outcome = execute(ctx, request, as_json)
    rows = release_rows(outcome.record)
    headers = ["HOST", "SERVICE", "CURRENT", "PREVIOUS", "DEPLOYED", "BY", "ON HOST"]
    body = [
        [
            r["host"],
            r["service"],
            r["current"] or "-",
            r["previous"] or "-",
            r["deployed_at"] or "-",
            r["deployed_by"] or "-",
            ", ".join(r["releases"]),
        ]
        for r in rows
    ]
    finish_rows(outcome, as_json, "releases", rows, report.table(headers, body) if body else "no releases")


@cli.group()
def env() -> None:
    """The environment knowledge (ai-memory/knowledge/environment.md)."""


@env.command("sync")
@inventory_option
@click.option("--check", is_flag=True, help="Report whether it would change; write nothing.")
@json_option
@pass_ctx
def env_sync(ctx: Context, inventory: str | None, check: bool, as_json: bool) -> None:
    """Render knowledge/environment.md from the inventory: hosts, services, ports, URLs, health checks,
    backup roots, schedules, and the names (never the values) of environment variables."""
    request = RunRequest(
        playbook=ctx.settings.playbook_path("env_sync.yml"),
        inventory=ctx.inventory_path(inventory),
        check=check,
        diff=check,
        extra_vars={"env_sync_memory_dir": str(ctx.settings.memory_dir)},
        event="env sync",
    )
    outcome = execute(ctx, request, as_json)
    path = ctx.settings.memory_dir / "knowledge" / "environment.md"
    changed = outcome.record.totals().changed > 0
    if not as_json:
        click.echo(
            f"{path}: {'would change' if check and changed else 'changed' if changed else 'unchanged'}"
        )
    finish(outcome, as_json, {"path": str(path), "changed": changed})


@cli.group()
def incidents() -> None:
    """List, show, acknowledge and resolve incident records (ai-memory/incidents/)."""


@incidents.command("list")
@click.option("--status", type=click.Choice(["open", "acknowledged", "resolved", "active"]), help="Filter.")
@json_option
@pass_ctx
def incidents_list(ctx: Context, status: str | None, as_json: bool) -> None:
    """All incidents, oldest first."""
    from .incidents import IncidentStore

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


def _incident_action(action):
    from .incidents import IncidentError

    try:
        return action()
    except IncidentError as exc:
        raise BadInput(str(exc)) from None


@incidents.command("show")
@click.argument("incident_id")
@json_option
@pass_ctx
def incidents_show(ctx: Context, incident_id: str, as_json: bool) -> None:
    """One incident record with its timeline, diagnostics and debugging notes."""
    from .incidents import IncidentStore

    incident = _incident_action(lambda: IncidentStore(ctx.store).get(incident_id))
    click.echo(json.dumps(incident.to_dict(), indent=2) if as_json else incident.to_markdown())


@incidents.command("ack")
@click.argument("incident_id")
@click.option("--note", default="", help="Who is on it, what is known.")
@pass_ctx
def incidents_ack(ctx: Context, incident_id: str, note: str) -> None:
    """Acknowledge an open incident."""
    from .incidents import IncidentStore

    incident = _incident_action(lambda: IncidentStore(ctx.store).acknowledge(incident_id, note))
    click.echo(f"{incident.id}: {incident.status}")


@incidents.command("resolve")
@click.argument("incident_id")
@click.option("--cause", default="", help="What caused it.")
@click.option("--resolution", default="", help="What fixed it.")
@pass_ctx
def incidents_resolve(ctx: Context, incident_id: str, cause: str, resolution: str) -> None:
    """Resolve an incident by hand."""
    from .incidents import IncidentStore

    incident = _incident_action(lambda: IncidentStore(ctx.store).resolve(incident_id, cause, resolution))
    click.echo(f"{incident.id}: {incident.status}")


@cli.group()
def logs() -> None:
    """Review service logs."""


@logs.command("review")
@inventory_option
@limit_option
@json_option
@pass_ctx
def logs_review(ctx: Context, inventory: str | None, limit: str | None, as_json: bool) -> None:
    """Count errors and warnings per service since the last review (a cursor per log); write the summary to
    the daily memory and propose new error signatures in failures/proposed-signatures.md."""
    from .logreview import review_hooks

    request = RunRequest(
        playbook=ctx.settings.playbook_path("logs_review.yml"),
        inventory=ctx.inventory_path(inventory),
        limit=limit,
        event="log review",
    )
    finish(execute(ctx, request, as_json, prepare=review_hooks), as_json)


@cli.command()
@click.argument("action", type=click.Choice(["install", "remove", "show"]))
@click.option("--backend", type=click.Choice(["auto", "systemd", "cron"]), default="auto", show_default=True)
@inventory_option
@json_option
@pass_ctx
def schedule(ctx: Context, action: str, backend: str, inventory: str | None, as_json: bool) -> None:
    """Install, remove or show the periodic jobs: the heartbeat every 30 minutes and the daily log review
    (systemd timers where the host runs systemd, else cron entries)."""
    import shutil

    state = {"install": "present", "remove": "absent", "show": "show"}[action]
    request = RunRequest(
        playbook=ctx.settings.playbook_path("schedule.yml"),
        inventory=ctx.inventory_path(inventory),
        extra_vars={
            "schedule_state": state,
            "schedule_backend": backend,
            "schedule_workdir": os.getcwd(),
            "schedule_opsrunner": shutil.which("opsrunner") or str(Path(sys.argv[0]).resolve()),
            "schedule_memory_dir": str(ctx.settings.memory_dir),
        },
        event=f"schedule {action}",
    )
    shown: list[str] = []

    def collect(event: dict[str, Any]) -> None:
        data = event.get("event_data") or {}
        if event.get("event") == "runner_on_ok" and data.get("task") == "Report the installed jobs":
            message = (data.get("res") or {}).get("msg")
            shown.extend(message if isinstance(message, list) else [str(message)])

    outcome = Runner(ctx.settings, ctx.store).run(request, on_event=collect)
    if shown and not as_json:
        click.echo("\n".join(shown))
    finish(outcome, as_json, {"jobs": shown})


@cli.group()
def memory() -> None:
    """Read the memory store."""


@memory.command("show")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="Day to show (default: today, UTC).")
@click.option("--last", type=int, default=0, help="Show only the last N entries.")
@json_option
@pass_ctx
def memory_show(ctx: Context, day: str | None, last: int, as_json: bool) -> None:
    """Show the daily memory entries of one day, parsed back from daily/YYYY-MM-DD.md."""
    try:
        date = dt.date.fromisoformat(day) if day else dt.datetime.now(dt.UTC).date()
    except ValueError:
        raise BadInput(f"bad date {day!r}: use YYYY-MM-DD") from None
    entries = ctx.store.read_daily(date)
    if last:
        entries = entries[-last:]
    if as_json:
        click.echo(json.dumps([report.entry_json(e) for e in entries], indent=2))
        return
    if not entries:
        click.echo(f"no daily memory for {date.isoformat()} in {ctx.store.root}")
        return
    click.echo(f"{ctx.store.path(ctx.store.daily_relpath(date))}\n")
    for entry in entries:
        click.echo(entry.to_markdown().rstrip() + "\n")


@cli.group()
def demo() -> None:
    """The demo AITBC stack (stand-in services) on the inventory's hosts."""


def _demo_command(action: str, help_text: str) -> None:
    @demo.command(action, help=help_text)
    @inventory_option
    @limit_option
    @json_option
    @pass_ctx
    def command(ctx: Context, inventory: str | None, limit: str | None, as_json: bool) -> None:
        request = RunRequest(
            playbook=ctx.settings.playbook_path("demo.yml"),
            inventory=ctx.inventory_path(inventory),
            limit=limit,
            extra_vars={"demo_action": action},
            event=f"demo {action}",
        )
        outcome = execute(ctx, request, as_json)
        rows = report.demo_rows(outcome.record)
        finish_rows(outcome, as_json, "services", rows, report.demo_table(rows))


_demo_command("up", "Install and start the demo stack, then show its status.")
_demo_command("down", "Stop every demo service.")
_demo_command("status", "Show each demo service with its pid, port and health.")


def _register_commands() -> None:
    """Commands that live in their own modules."""
    from .diagnose import diagnose_command
    from .statuspage import report_command

    cli.add_command(report_command, "report")
    cli.add_command(diagnose_command, "diagnose")


_register_commands()


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="opsrunner", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        click.echo(f"opsrunner: error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except BadInput as exc:
        click.echo(f"opsrunner: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("opsrunner: interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("opsrunner: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("OPSRUNNER_DEBUG"):
            raise
        click.echo(f"opsrunner: error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
