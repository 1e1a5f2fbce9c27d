"""What every command shares: the click context object, the one way to build a playbook run, and the one
way to finish a command (text or --json, and the exit code). The shared options are in options.py."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .. import recorder, report
from ..hooks import playbook_event
from ..memory import MemoryStore
from ..runner import Runner, RunOutcome, RunRequest
from ..settings import BadInput, Settings


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

    def runner(self) -> Runner:
        return Runner(self.settings, self.store)


pass_ctx = click.make_pass_decorator(Context)


# -- running a playbook ------------------------------------------------------------------------------


def playbook_request(
    ctx: Context,
    name: str,
    *,
    inventory: str | None = None,
    limit: str | None = None,
    extra_vars: dict[str, Any] | None = None,
    event: str | None = None,
    check: bool = False,
    diff: bool = False,
) -> RunRequest:
    """The run of playbook `name` (a path, or a name under playbooks/) on the chosen inventory.

    The event defaults to the playbook's in the hook table (hooks.PLAYBOOK_EVENTS), so a command and a
    plain ansible-playbook run of the same playbook get the same event and hooks.
    """
    playbook = ctx.settings.playbook_path(name)
    return RunRequest(
        playbook=playbook,
        inventory=ctx.inventory_path(inventory),
        limit=limit,
        check=check,
        diff=diff,
        extra_vars=dict(extra_vars or {}),
        event=event or playbook_event(playbook.name),
    )


def execute(ctx: Context, request: RunRequest, as_json: bool, verbose: bool = False) -> RunOutcome:
    on_event = None
    if verbose and not as_json:

        def on_event(event: dict[str, Any]) -> None:
            if event.get("stdout"):
                click.echo(event["stdout"])

    outcome = ctx.runner().run(request, on_event=on_event)
    record = outcome.record
    if request.limit and not record.hosts and record.config_error is None and not record.failures:
        raise BadInput(f"--limit {request.limit}: no host of the inventory matches it")
    return outcome


def reject_unknown_service(outcome: RunOutcome) -> None:
    """A playbook's `unknown service: S` or `service not placed: ...` check is bad input (exit 2)."""
    message = recorder.first_bad_request(outcome.record.failures)
    if message:
        raise BadInput(message)


# -- finishing a command -----------------------------------------------------------------------------


def finish(outcome: RunOutcome, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    record = outcome.record
    end_on_config_error(outcome, as_json, extra)
    if as_json:
        payload = report.record_json(record, outcome.artifact_dir)
        payload.update(extra or {})
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        click.echo(report.summary_text(record, outcome.artifact_dir))
    sys.exit(record.exit_code)


def end_on_config_error(outcome: RunOutcome, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """A run stopped by a mistake in the inventory or catalogue (the recorder decides which) ends every
    command alike: its one line on stderr and exit 2; --json still prints the record, with `error`."""
    record = outcome.record
    if record.config_error is None:
        return
    click.echo(f"opsrunner: error: {record.config_error}", err=True)
    if as_json:
        payload = report.record_json(record, outcome.artifact_dir)
        payload.update(extra or {})
        payload.update(exit_code=record.exit_code, error=record.config_error)
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    sys.exit(record.exit_code)


def finish_rows(outcome: RunOutcome, as_json: bool, key: str, rows: list[Any], table: str) -> None:
    """Finish a command that reads the hosts: its rows under `key` in --json, else the table first."""
    end_on_config_error(outcome, as_json, {key: rows})
    if not as_json:
        click.echo(table)
    finish(outcome, as_json, {key: rows})
