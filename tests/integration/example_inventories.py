"""The shipped example inventories (inventory/examples/), pointed at the SSH test hosts.

A copy of an example is changed only where a real fleet differs from the test hosts: each example host
gets a test host's connection variables and its folders under that host's state dir. Everything else is
the example as shipped, so a test of the copy proves the shipped files work as written."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from testhosts import SSH_COMMON_ARGS, HostPool

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "inventory" / "examples"


def example_hosts(groups: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, variables) of every host of an inventory's group tree, in the file's order."""
    yield from (groups.get("hosts") or {}).items()
    for child in (groups.get("children") or {}).values():
        yield from example_hosts(child or {})


def example_on_test_hosts(
    example: str, pool: HostPool, target: Path, folders: dict[str, str] | None = None
) -> dict[str, str]:
    """Copy inventory/examples/EXAMPLE to TARGET with its hosts (in file order) on the test hosts t1, t2...

    ``folders`` names host variables that are paths (variable -> subfolder), set under the test host's
    state dir like aitbc_root. Returns example host name -> test host name."""
    shutil.copytree(EXAMPLES / example, target)
    inventory = target / "hosts.yml"
    data = yaml.safe_load(inventory.read_text())
    hosts = list(example_hosts(data["all"]))
    assert len(hosts) <= len(pool.hosts), f"{example} has more hosts than the test pool"
    placed: dict[str, str] = {}
    for (name, values), test_host in zip(hosts, pool.hosts[: len(hosts)], strict=True):
        values.update(
            ansible_host=test_host.address,
            ansible_port=test_host.port,
            ansible_user="root",
            ansible_ssh_private_key_file=str(pool.client_key),
            ansible_ssh_common_args=SSH_COMMON_ARGS,
            aitbc_root=str(test_host.state_dir / "root"),
            **{var: str(test_host.state_dir / sub) for var, sub in (folders or {}).items()},
        )
        placed[name] = test_host.name
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    return placed
