"""What the commands that change hosts share under the policy (opsrunner.policy, opsrunner.change): the
plan check first, the --override-freeze/--reason options, and the Change around the run."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..change import NEXT_STEPS, Change, require_plan_or_refuse
from ..policy import Policy
from .context import Context

__all__ = ["NEXT_STEPS", "Policy", "change", "check_policy", "override_freeze", "plan_command"]

F = TypeVar("F", bound=Callable[..., Any])


def override_freeze() -> Callable[[F], F]:
    """--override-freeze and --reason TEXT (both recorded and announced)."""

    def decorate(function: F) -> F:
        function = click.option(
            "--reason", default="", metavar="TEXT", help="Why (recorded in memory and announced)."
        )(function)
        return click.option(
            "--override-freeze",
            is_flag=True,
            help="Run inside a freeze window of the policy (needs --reason; recorded and announced).",
        )(function)

    return decorate


def plan_command(action: str, *args: str | None, inventory: str | None, limit: str | None) -> str:
    """The `opsrunner plan ...` command for the same change (arguments that are None are left out)."""
    argv = ["opsrunner", "plan", action, *(a for a in args if a is not None)]
    argv += ["-i", inventory] if inventory else []
    argv += ["--limit", limit] if limit else []
    return shlex.join(argv)


def check_policy(ctx: Context, inventory: str | None, action: str, hint: str) -> Policy:
    """The inventory's policy, after refusing (exit 2) an action it wants planned."""
    policy = Policy.load(ctx.inventory_path(inventory))
    require_plan_or_refuse(policy, action, hint)
    return policy


def change(
    ctx: Context,
    policy: Policy,
    action: str,
    title: str,
    *,
    inventory: str | None,
    limit: str | None,
    services: list[str] | tuple[str, ...] = (),
    reason: str = "",
    override: bool = False,
) -> Change:
    return Change(
        ctx.settings,
        ctx.store,
        ctx.inventory_path(inventory),
        action,
        limit=limit,
        services=services,
        reason=reason,
        override_freeze=override,
        title=title,
        policy=policy,
    )
