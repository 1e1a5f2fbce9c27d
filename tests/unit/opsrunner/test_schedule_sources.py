"""`opsrunner schedule install` as root refuses a checkout, project or opsrunner another user can change:
the jobs run as root every 30 minutes from there (issue 13, item 16)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsrunner.cli.schedule import check_root_job_sources, writable_by_others
from opsrunner.settings import BadInput

BIN = Path(sys.executable).parent

NOBODY = 65534

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give folders to another user")


def folder(path: Path, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    path.chmod(mode)
    return path


@needs_root
def test_install_from_a_checkout_owned_by_another_user_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    checkout = folder(tmp_path / "checkout", uid=NOBODY, gid=NOBODY)
    done = subprocess.run(
        [str(BIN / "opsrunner"), "schedule", "install", "--backend", "cron"],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(
        f"opsrunner: error: refusing to install root's jobs from {checkout} (working directory)"
    )
    assert f"{checkout} is owned by uid {NOBODY}, not root" in line and "root-owned copy" in line
    assert sorted(p.name for p in checkout.iterdir()) == []  # no run started: no .work, no ai-memory


@needs_root
@pytest.mark.parametrize(
    ("mode", "gid", "why"),
    [
        (0o757, 0, "writable by every user (mode 0757)"),
        (0o775, NOBODY, f"writable by group {NOBODY} (mode 0775)"),
    ],
)
def test_a_checkout_others_can_write_is_refused(tmp_path: Path, mode: int, gid: int, why: str) -> None:
    checkout = folder(tmp_path / "checkout", mode=mode, gid=gid)
    assert writable_by_others(checkout) == f"{checkout} is {why}"
    with pytest.raises(BadInput, match="refusing to install root's jobs"):
        check_root_job_sources({"working directory": checkout})


@needs_root
def test_a_root_owned_checkout_below_another_users_folder_is_refused(tmp_path: Path) -> None:
    theirs = folder(tmp_path / "home", uid=NOBODY)
    checkout = folder(theirs / "checkout")  # root's, but its parent can be renamed under it by nobody
    assert writable_by_others(checkout) == f"{theirs} is owned by uid {NOBODY}, not root"
    link = tmp_path / "link"
    link.symlink_to(checkout)  # what the path resolves to is checked, not the link
    with pytest.raises(BadInput, match=f"owned by uid {NOBODY}"):
        check_root_job_sources({"working directory": link})


@needs_root
def test_a_root_owned_checkout_is_accepted_even_below_a_sticky_tmp(tmp_path: Path) -> None:
    sticky = folder(tmp_path / "tmp", mode=0o1777)
    checkout = folder(sticky / "checkout")
    (checkout / "x.py").write_text("")
    assert writable_by_others(checkout) is None and writable_by_others(checkout / "x.py") is None
    check_root_job_sources({"working directory": checkout, "opsrunner": BIN / "opsrunner"})
    world = checkout / "world.py"
    world.write_text("")
    world.chmod(0o666)  # the last item itself may not be writable by others, sticky parent or not
    assert writable_by_others(world) == f"{world} is writable by every user (mode 0666)"
