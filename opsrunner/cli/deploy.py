"""`opsrunner deploy`, `rollback` and `releases`: releases of the deployable services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .. import report
from ..deploys import release_rows, request_error
from ..runner import RunOutcome, RunRequest
from ..settings import BadInput
from . import changes, options
from .context import Context, execute, finish, finish_rows, pass_ctx, playbook_request, reject_unknown_service


@click.command()
@click.argument("version")
@click.option("--from", "artifact", required=True, metavar="ARTIFACT", help="Release tarball or folder.")
@click.option("--service", default="coordinator-api", show_default=True, help="The service to deploy.")
@click.option("--serial", default="1", show_default=True, metavar="N", help="Hosts per batch (N or N%).")
@options.inventory()
@options.limit()
@options.check("Dry run: show the plan, change nothing.")
@options.extra_vars()
@changes.override_freeze()
@options.json()
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
    override_freeze: bool,
    reason: str,
    as_json: bool,
) -> None:
    """Deploy release VERSION of a service, one batch of hosts at a time: pre-deploy backup, unpack,
    migrate, switch, restart, health gate. A batch that fails its gate rolls back automatically, opens an
    incident and stops the deploy (exit 1); later batches are not touched.

    Under a policy (ops-policy.yml beside the inventory) a deploy may need an approved plan, and is
    refused inside a freeze window unless --override-freeze --reason TEXT."""
    problem = request_error(version, serial)
    if problem:
        raise BadInput(problem)
    source = Path(artifact).absolute()
    if not source.exists():
        raise BadInput(f"artifact not found: {artifact}")
    policy = None
    if not check:  # a dry run changes nothing: it needs no plan and no window
        hint = changes.plan_command(
            "deploy", version, "--from", artifact, "--service", service, inventory=inventory, limit=limit
        )
        policy = changes.check_policy(ctx, inventory, "deploy", hint)
    request = playbook_request(
        ctx,
        "deploy.yml",
        inventory=inventory,
        limit=limit,
        check=check,
        extra_vars={
            **options.parse_extra_vars(extra_vars),
            "deploy_version": version,
            "deploy_artifact": str(source),
            "deploy_service": service,
            "deploy_serial": serial,
        },
    )
    if policy is None:
        run_deploy(ctx, request, as_json)
        return
    title = f"deploy {service} {version}"
    with changes.change(
        ctx,
        policy,
        "deploy",
        title,
        inventory=inventory,
        limit=limit,
        services=[service],
        reason=reason,
        override=override_freeze,
    ):
        run_deploy(ctx, request, as_json)


def run_deploy(ctx: Context, request: RunRequest, as_json: bool) -> None:
    outcome = execute(ctx, request, as_json)
    reject_unknown_service(outcome)
    finish(outcome, as_json, {"releases": releases_after(outcome)})


def releases_after(outcome: RunOutcome) -> dict[str, Any]:
    """host -> {current, previous} as the last release task of the run left it."""
    found: dict[str, Any] = {}
    for result in outcome.record.results:
        if result.action not in ("aitbc.ops.release", "aitbc.ops.release_info"):
            continue
        if not result.failed and not result.result.get("skipped") and "current" in result.result:
            found[result.host] = {k: result.result.get(k) for k in ("current", "previous")}
    return found


@click.command()
@click.option("--to", "version", metavar="VERSION", help="A release still on the hosts (default: previous).")
@click.option("--service", default="coordinator-api", show_default=True, help="The service to roll back.")
@options.inventory()
@options.limit()
@changes.override_freeze()
@options.json()
@pass_ctx
def rollback(
    ctx: Context,
    version: str | None,
    service: str,
    inventory: str | None,
    limit: str | None,
    override_freeze: bool,
    reason: str,
    as_json: bool,
) -> None:
    """Switch back to the recorded previous release (or --to VERSION), one host at a time, behind the
    health gate; if the gate fails, return to where it was (exit 1). Announced, and never refused by a
    freeze window (it is recovery)."""
    variables: dict[str, Any] = {"deploy_service": service}
    if version:
        variables["deploy_version"] = version
    hint = changes.plan_command(
        "rollback",
        *(["--to", version] if version else []),
        "--service",
        service,
        inventory=inventory,
        limit=limit,
    )
    policy = changes.check_policy(ctx, inventory, "rollback", hint)
    request = playbook_request(ctx, "rollback.yml", inventory=inventory, limit=limit, extra_vars=variables)
    title = f"rollback {service}" + (f" to {version}" if version else "")
    with changes.change(
        ctx,
        policy,
        "rollback",
        title,
        inventory=inventory,
        limit=limit,
        services=[service],
        reason=reason,
        override=override_freeze,
    ):
        run_rollback(ctx, request, as_json)


def run_rollback(ctx: Context, request: RunRequest, as_json: bool) -> None:
    outcome = execute(ctx, request, as_json)
    failed = [
        f.message for f in outcome.record.failures if "rollback" in f.message and "not present" in f.message
    ]
    if failed:
        raise BadInput(failed[0])
    finish(outcome, as_json, {"releases": releases_after(outcome)})


@click.command()
@options.inventory()
@options.limit()
@options.json()
@pass_ctx
def releases(ctx: Context, inventory: str | None, limit: str | None, as_json: bool) -> None:
    """The current and previous release of each deployable service per host, and when it was deployed."""
    request = playbook_request(ctx, "releases.yml", inventory=inventory, limit=limit)
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
