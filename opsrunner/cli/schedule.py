"""`opsrunner schedule install|remove|show`: the periodic jobs (heartbeat, daily log review)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from . import options
from .context import Context, finish, pass_ctx, playbook_request

STATES = {"install": "present", "remove": "absent", "show": "show"}
SHOW_TASK = "Report the installed jobs"  # playbooks/schedule.yml's task that prints them


@click.command()
@click.argument("action", type=click.Choice(["install", "remove", "show"]))
@click.option("--backend", type=click.Choice(["auto", "systemd", "cron"]), default="auto", show_default=True)
@options.inventory()
@options.json()
@pass_ctx
def schedule(ctx: Context, action: str, backend: str, inventory: str | None, as_json: bool) -> None:
    """Install, remove or show the periodic jobs: the heartbeat every 30 minutes and the daily log review
    (systemd timers where the host runs systemd, else cron entries)."""
    request = playbook_request(
        ctx,
        "schedule.yml",
        inventory=inventory,
        extra_vars={
            "schedule_state": STATES[action],
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
        if event.get("event") == "runner_on_ok" and data.get("task") == SHOW_TASK:
            message = (data.get("res") or {}).get("msg")
            shown.extend(message if isinstance(message, list) else [str(message)])

    outcome = ctx.runner().run(request, on_event=collect)
    if shown and not as_json:
        click.echo("\n".join(shown))
    finish(outcome, as_json, {"jobs": shown})
