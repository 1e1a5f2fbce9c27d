"""`opsrunner packages install NAME...`: operating system packages, as the policy allows."""

from __future__ import annotations

import re

import click

from ..settings import BadInput
from . import changes, options
from .context import Context, execute, finish, pass_ctx, playbook_request

# Debian's rules for a package name: lowercase letters, digits, + - . ; two characters at least, starting
# with a letter or digit. Anything else (a version, a glob, an option) is refused before anything runs.
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
MAX_PACKAGES = 100


def package_name_errors(names: tuple[str, ...]) -> str:
    """ "" when every name follows Debian's rules, else the problem in one line."""
    if not names:
        return "name at least one package"
    if len(names) > MAX_PACKAGES:
        return f"at most {MAX_PACKAGES} packages at once"
    bad = [name for name in names if not PACKAGE_RE.match(name)]
    if bad:
        shown = ", ".join(repr(name[:60]) for name in bad[:5])
        return (
            f"bad package name(s) {shown}: Debian names are lowercase letters, digits, + - . (2+ characters)"
        )
    return ""


@click.group()
def packages() -> None:
    """Operating system packages on the hosts (ansible.builtin.package), under the policy."""


@packages.command("install")
@click.argument("names", nargs=-1, metavar="NAME...")
@options.inventory()
@options.limit()
@options.check("Dry run: show what would be installed, change nothing.")
@options.json()
@pass_ctx
def install(
    ctx: Context, names: tuple[str, ...], inventory: str | None, limit: str | None, check: bool, as_json: bool
) -> None:
    """Install packages NAME... on every host (or --limit). Packages on the policy's allow-list
    (packages.allowed in ops-policy.yml) go straight through; any other needs an approved plan
    (`opsrunner plan packages NAME...`). Without a policy file every package is allowed."""
    problem = package_name_errors(names)
    if problem:
        raise BadInput(problem)
    unique = list(dict.fromkeys(names))
    policy = changes.Policy.load(ctx.inventory_path(inventory))
    refused = [name for name in unique if not policy.package_allowed(name)]
    if refused and not check:
        hint = changes.plan_command("packages", *unique, inventory=inventory, limit=limit)
        raise BadInput(
            f"the policy needs an approved plan for packages not on its allow-list ({', '.join(refused)}): "
            f"{hint} ... {changes.NEXT_STEPS} (policy: {policy.path})"
        )
    request = playbook_request(
        ctx,
        "packages.yml",
        inventory=inventory,
        limit=limit,
        check=check,
        diff=check,
        extra_vars={"packages_names": unique, "packages_state": "present"},
        event="packages install",
    )
    extra = {"packages": unique}
    if check:
        finish(execute(ctx, request, as_json), as_json, extra)
        return
    title = f"packages install {' '.join(unique)}"
    with changes.change(ctx, policy, "packages", title, inventory=inventory, limit=limit):
        finish(execute(ctx, request, as_json), as_json, extra)
