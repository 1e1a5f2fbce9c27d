"""The opsrunner command line: the root group, every command added in one place, and `main`.

Exit codes (DESIGN.md): 0 success/healthy, 1 failed/unhealthy, 2 usage or bad input, 3 unreachable
host(s), 130 interrupted. Errors are one line on stderr; OPSRUNNER_DEBUG=1 shows tracebacks.
"""

from __future__ import annotations

import json
import os
import sys

import click

from ..settings import BadInput, Settings
from . import options
from .backup import backup, backups, restore, verify
from .context import Context
from .demo import demo
from .deploy import deploy, releases, rollback
from .diagnose import diagnose
from .env import env
from .heartbeat import heartbeat
from .incidents import incidents
from .intake import intake
from .logs import logs
from .mcp import mcp
from .memory import memory
from .packages import packages
from .plans import apply_command, approve, plan, plans
from .report import report
from .run import run
from .schedule import schedule
from .service import service

__all__ = ["Context", "cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@options.inventory()
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


for command in (
    run,
    heartbeat,
    service,
    backup,
    backups,
    verify,
    restore,
    deploy,
    rollback,
    releases,
    env,
    incidents,
    intake,
    logs,
    mcp,
    schedule,
    memory,
    packages,
    demo,
    report,
    diagnose,
    plan,
    approve,
    plans,
    apply_command,
):
    cli.add_command(command)


# Before 2.19, extra vars were templated: `opsrunner service status "{{ lookup('pipe', 'id') }}"` would run
# a command on the controller. From 2.19 on, values passed in are data (untrusted, never templated).
MIN_ANSIBLE_CORE = (2, 19)


def check_ansible_core(version: str) -> None:
    """Refuse an ansible-core older than MIN_ANSIBLE_CORE (exit 2)."""
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < MIN_ANSIBLE_CORE:
        wanted = ".".join(map(str, MIN_ANSIBLE_CORE))
        raise BadInput(
            f"ansible-core {version} is too old: opsrunner needs {wanted} or newer, where the values it "
            f"passes to playbooks are data and never templated (pip install 'ansible-core>={wanted}')"
        )


def wants_json(argv: list[str] | None) -> bool:
    return "--json" in (sys.argv[1:] if argv is None else argv)


def main(argv: list[str] | None = None) -> None:
    try:
        from ansible.release import __version__ as ansible_core_version

        check_ansible_core(ansible_core_version)
        cli.main(args=argv, prog_name="opsrunner", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        click.echo(f"opsrunner: error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except BadInput as exc:
        click.echo(f"opsrunner: error: {exc}", err=True)
        if wants_json(argv):  # a program asked: it reads the error from stdout too
            click.echo(json.dumps({"error": str(exc), "exit_code": exc.exit_code}))
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
