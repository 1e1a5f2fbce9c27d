"""A restore as root into a folder the service's account owns: links planted there are never followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import RESTORE_TMP
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.base import stage_copy


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(copy of the set, target, victim): the old fixed temp name of the target links to the victim."""
    data = tmp_path / "data"
    data.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("root:x:0:0\n")
    victim.chmod(0o644)
    target = data / "app.db"
    (data / ("app.db" + RESTORE_TMP)).symlink_to(victim)
    copy = tmp_path / "set-copy"
    copy.write_bytes(b"restored bytes")
    return copy, target, victim


def test_a_planted_link_is_not_followed(planted: tuple[Path, Path, Path]) -> None:
    copy, target, victim = planted
    tmp = stage_copy(str(copy), str(target), {"owner": {"mode": "0o600", "uid": 0, "gid": 0}})
    assert victim.read_text() == "root:x:0:0\n"
    assert victim.stat().st_mode & 0o777 == 0o644
    assert Path(tmp).read_bytes() == b"restored bytes"
    assert not Path(tmp).is_symlink() and Path(tmp).stat().st_mode & 0o777 == 0o600
    assert Path(tmp).parent == target.parent and Path(tmp).name.startswith("app.db" + RESTORE_TMP + "-")


def test_a_failed_copy_leaves_no_temp_file(planted: tuple[Path, Path, Path]) -> None:
    _copy, target, _victim = planted
    before = set(os.listdir(target.parent))
    with pytest.raises(FileNotFoundError):
        stage_copy(str(target.parent / "missing"), str(target), {})
    assert set(os.listdir(target.parent)) == before
