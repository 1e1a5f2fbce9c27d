"""`opsrunner schedule install|remove|show`: the periodic jobs (heartbeat, daily log review)."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import click

from ..settings import BadInput
from . import options
from .context import Context, finish, pass_ctx, playbook_request

STATES = {"install": "present", "remove": "absent", "show": "show"}
SHOW_TASK = "Report the installed jobs"  # playbooks/schedule.yml's task that prints them


def writable_by_others(path: Path) -> str | None:
    """Why a user other than root could change what is at ``path`` (it, or any folder above it up to /), or
    None. A sticky folder (/tmp) above it is fine: others cannot rename or remove what root owns in it."""
    chain = [path, *path.parents]
    for index, item in enumerate(chain):
        try:
            st = item.lstat()
        except OSError as exc:
            return f"{item}: {exc.strerror or exc}"
        if st.st_uid != 0:
            return f"{item} is owned by uid {st.st_uid}, not root"
        sticky_parent = index > 0 and stat.S_ISDIR(st.st_mode) and bool(st.st_mode & stat.S_ISVTX)
        if st.st_mode & stat.S_IWOTH and not sticky_parent:
            return f"{item} is writable by every user (mode {stat.S_IMODE(st.st_mode):04o})"
        if st.st_mode & stat.S_IWGRP and st.st_gid != 0 and not sticky_parent:
            return f"{item} is writable by group {st.st_gid} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def check_root_job_sources(paths: dict[str, Path]) -> None:
    """A job that runs as root must run only code root owns: refuse (exit 2) a checkout, project or opsrunner
    that another user can change, which would make their code root's every 30 minutes."""
    for what, path in paths.items():
        why = writable_by_others(path.resolve())
        if why:
            raise BadInput(
                f"refusing to install root's jobs from {path} ({what}): {why}, so another user could change "
                "the code root runs; install from a root-owned copy (as root: clone the checkout to a folder "
                "such as /opt/aitbc-ops, make its .venv there, and run schedule install in that folder)"
            )


@click.command()
@click.argument("action", type=click.Choice(["install", "remove", "show"]))
@click.option("--backend", type=click.Choice(["auto", "systemd", "cron"]), default="auto", show_default=True)
@options.inventory()
@options.json()
@pass_ctx
def schedule(ctx: Context, action: str, backend: str, inventory: str | None, as_json: bool) -> None:
    """Install, remove or show the periodic jobs: the heartbeat every 30 minutes and the daily log review
    (systemd timers where the host runs systemd, else cron entries)."""
    workdir = Path(os.getcwd())
    executable = shutil.which("opsrunner") or str(Path(sys.argv[0]).resolve())
    if action == "install" and os.geteuid() == 0:
        check_root_job_sources(
            {
                "working directory": workdir,
                "project": ctx.settings.project_root,
                "opsrunner": Path(executable),
            }
        )
    request = playbook_request(
        ctx,
        "schedule.yml",
        inventory=inventory,
        extra_vars={
            "schedule_state": STATES[action],
            "schedule_backend": backend,
            "schedule_workdir": str(workdir),
            "schedule_opsrunner": executable,
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
