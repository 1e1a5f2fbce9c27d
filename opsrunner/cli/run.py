"""`opsrunner run PLAYBOOK`: any playbook, recorded in memory."""

from __future__ import annotations

import click

from ..hooks import RUN
from . import changes, options
from .context import Context, execute, finish, pass_ctx, playbook_request

# The project's playbooks that are changes under the policy: playbook file -> policy action.
POLICY_ACTIONS = {"config.yml": "config", "devnet_reset.yml": "devnet-reset"}


@click.command()
@click.argument("playbook")
@options.inventory()
@options.limit()
@click.option("--check", is_flag=True, help="Dry run: report what would change.")
@click.option("--diff", is_flag=True, help="Show file differences.")
@options.extra_vars()
@click.option("-v", "--verbose", is_flag=True, help="Stream Ansible's (redacted) output.")
@options.json()
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
    """Run PLAYBOOK (a path, or a name under playbooks/) and record it in memory. `config` and
    `devnet_reset` are changes under the policy (ops-policy.yml): a plan may be needed (not for --check),
    and they are announced and run in a maintenance window."""
    # Always the plain run's event, whatever the playbook: `opsrunner heartbeat` is the heartbeat.
    request = playbook_request(
        ctx,
        playbook,
        inventory=inventory,
        limit=limit,
        check=check,
        diff=diff,
        extra_vars=options.parse_extra_vars(extra_vars),
        event=RUN,
    )
    project_playbooks = ctx.settings.project_root / "playbooks"
    action = (
        POLICY_ACTIONS.get(request.playbook.name) if request.playbook.parent == project_playbooks else None
    )
    if action is None or check:
        finish(execute(ctx, request, as_json, verbose), as_json)
        return
    name = request.playbook.stem
    hint = changes.plan_command(action, *extra_args(extra_vars), inventory=inventory, limit=limit)
    policy = changes.check_policy(ctx, inventory, action, hint)
    with changes.change(ctx, policy, action, f"run {name}", inventory=inventory, limit=limit):
        finish(execute(ctx, request, as_json, verbose), as_json)


def extra_args(extra_vars: tuple[str, ...]) -> list[str]:
    return [arg for pair in extra_vars for arg in ("-e", pair)]
