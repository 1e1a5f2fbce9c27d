"""Fixtures for integration tests: real sshd hosts (see testhosts.py) and the repository paths."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from nspawn import systemd_host_fixture as systemd_host_fixture  # the shared systemd host (nspawn)
from stack import SharedStack
from testhosts import SSHD, HostPool, create_hosts

REPO_ROOT = Path(__file__).resolve().parents[2]
SSH_HOSTS = 3


def testhosts_unavailable() -> str | None:
    """Why real SSH test hosts cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "SSH test hosts need root (network namespaces, sshd as root)"
    if not os.access(SSHD, os.X_OK):
        return f"SSH test hosts need openssh-server ({SSHD} not found)"
    for tool in ("ip", "unshare", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"SSH test hosts need {tool!r} on PATH"
    return None


def _uses_stack(item: pytest.Item) -> bool:
    return "stack" in getattr(item, "fixturenames", ())


# Session resources that are slow to set up: the tests that share one run in one xdist worker, so each
# is set up once per run (see xdist_group below).
SHARED_RESOURCES = {"stack": "demo-stack", "systemd_host": "systemd-host", "docker_engine": "docker-engine"}


def xdist_group(item: pytest.Item) -> str:
    """The test's group for `pytest -n N --dist loadgroup`: the slow shared resource it uses, else its file
    (so a module's fixtures are set up once)."""
    names = getattr(item, "fixturenames", ())
    for fixture, group in SHARED_RESOURCES.items():
        if fixture in names:
            return group
    return str(Path(str(item.path)).relative_to(REPO_ROOT))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # Anything on the real hosts is an integration test, whether or not its module says so.
        if "ssh_hosts" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
        item.add_marker(pytest.mark.xdist_group(xdist_group(item)))
    # The modules on the shared demo stack run back to back (after the unit tests), so it goes up once.
    here = Path(__file__).parent

    def group(item: pytest.Item) -> int:
        if here not in Path(str(item.path)).parents:
            return 0
        return 1 if _uses_stack(item) else 2

    items.sort(key=group)  # stable: file and test order within each group stay as collected


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def ssh_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostPool]:
    """Hosts t1..t3 (inventory `pool.inventory`) plus t1p, t1 over paramiko (`pool.paramiko_inventory`)."""
    reason = testhosts_unavailable()
    if reason:
        pytest.skip(reason)
    pool = create_hosts(SSH_HOSTS, tmp_path_factory.mktemp("testhosts"))
    try:
        yield pool
    finally:
        pool.close()


_SHARED_STACK: list[SharedStack] = []


@pytest.fixture(scope="session")
def shared_stack(ssh_hosts: HostPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStack]:
    """The demo stack on t1..t3; the `stack` fixture calls `.up()` (see stack.SharedStack)."""
    shared = SharedStack(ssh_hosts, tmp_path_factory.mktemp("shared-stack"))
    _SHARED_STACK.append(shared)
    try:
        yield shared
    finally:
        shared.down()
        _SHARED_STACK.remove(shared)


@pytest.fixture
def stack(shared_stack: SharedStack) -> HostPool:
    """The SSH test hosts with the demo stack running on each (restarted if a test left it broken)."""
    shared_stack.up()
    return shared_stack.pool


@pytest.fixture(scope="module")
def shared_stack_down() -> None:
    """For module fixtures that start services of their own on the test hosts (the autouse fixture below
    runs after them): the shared demo stack goes down first, so its ports are free."""
    if _SHARED_STACK:
        _SHARED_STACK[0].down()


@pytest.fixture(autouse=True)
def _no_stack_unless_asked(request: pytest.FixtureRequest) -> None:
    # Tests without `stack` expect the hosts' ports free and no demo processes (molecule scenarios start
    # their own), so the shared stack goes down before the first of them.
    if _SHARED_STACK and not _uses_stack(request.node):
        _SHARED_STACK[0].down()


@pytest.fixture(scope="session")
def ansible_env(repo_root: Path) -> dict[str, str]:
    """Environment for running ansible/ansible-playbook from tests against the checkout's ansible.cfg."""
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(repo_root / "ansible.cfg"),
        # Keeps tests independent of the aitbc.ops.memory callback. An empty value crashes ansible-core
        # 2.19 ("A non-empty plugin name is required"), so name a stdout callback, which is never added twice.
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.minimal",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
    }


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with socket.socket() as probe:  # aiosmtpd's start-up check cannot use port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()
