"""The options many commands share, as factories (a command may word the help for what it does), and the
parser of the values of -e. Used as `@options.inventory()`, `@options.limit()`, `@options.check(help)`,
`@options.extra_vars()` and `@options.json()`."""

from __future__ import annotations

import json as json_text  # `json` here is the --json option
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..settings import BadInput

F = TypeVar("F", bound=Callable[..., Any])


def inventory() -> Callable[[F], F]:
    return click.option(
        "-i", "--inventory", "inventory", metavar="INV", help="Inventory (default: inventory/local.yml)."
    )


def limit(help_text: str = "Limit to hosts matching PATTERN.") -> Callable[[F], F]:
    return click.option("--limit", metavar="PATTERN", help=help_text)


def json(help_text: str = "Print a machine-readable result.") -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def extra_vars() -> Callable[[F], F]:
    return click.option(
        "-e", "--extra-vars", "extra_vars", multiple=True, metavar="K=V", help="Extra variables."
    )


def check(help_text: str) -> Callable[[F], F]:
    return click.option("--check", is_flag=True, help=help_text)


def parse_extra_vars(pairs: tuple[str, ...]) -> dict[str, Any]:
    """-e K=V pairs, -e '{"json": ...}' and -e @file.yml, as ansible-playbook takes them."""
    import yaml

    result: dict[str, Any] = {}
    for item in pairs:
        if item.startswith("@"):
            data = yaml.safe_load(Path(item[1:]).read_text())
        elif item.lstrip().startswith("{"):
            data = json_text.loads(item)
        elif "=" in item:
            key, _, value = item.partition("=")
            data = {key: value}
        else:
            raise BadInput(f"bad extra var {item!r}: use K=V, JSON or @file")
        if not isinstance(data, dict):
            raise BadInput(f"bad extra var {item!r}: not a mapping")
        result.update(data)
    return result
