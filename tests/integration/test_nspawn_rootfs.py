"""The nspawn test host's rootfs has `/` at 0755 (a Debian unit with `User=` cannot chdir into a 0700 `/`:
status=200/CHDIR): a cached rootfs from an older build is repaired when loaded, and a booted host runs a
unit as an unprivileged user."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nspawn import INCLUDE, MARKER, SUITE, SystemdHost, ensure_rootfs

pytestmark = pytest.mark.integration


def test_a_cached_rootfs_with_a_private_root_is_repaired_at_load(tmp_path: Path) -> None:
    cache = tmp_path / "rootfs"
    cache.mkdir(mode=0o700)  # as a build in a mkdtemp folder left it
    (cache / MARKER).write_text(json.dumps({"suite": SUITE, "include": list(INCLUDE)}))
    cache.chmod(0o700)
    assert ensure_rootfs(cache) == cache
    assert cache.stat().st_mode & 0o7777 == 0o755


def test_the_booted_host_runs_a_unit_with_user(systemd_host: SystemdHost) -> None:
    assert systemd_host.run("stat -c %a /").stdout.strip() == "755"
    proc = systemd_host.run("systemd-run --wait --quiet -p User=nobody /bin/true; echo rc=$?")
    assert "rc=0" in proc.stdout, proc.stdout + proc.stderr
