# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure functions of plugins/module_utils/release.py: versions, checksums, unsafe archive members,
pruning plans and request validation."""

from __future__ import annotations

import tarfile

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils import release as rl

DIGEST = "ab" * 32


@pytest.mark.parametrize("version", ["1.2.3", "v2", "2025.06.10+build.7", "1_0-rc1"])
def test_check_version_accepts(version):
    assert rl.check_version(version) == version


@pytest.mark.parametrize("version", [None, "", "-1", ".hidden", "a/b", "1 2", "x" * 201])
def test_check_version_rejects(version):
    with pytest.raises(rl.ReleaseError, match="bad version"):
        rl.check_version(version)


def test_parse_checksum():
    assert rl.parse_checksum(None) is None
    assert rl.parse_checksum("") is None
    assert rl.parse_checksum(DIGEST) == DIGEST
    assert rl.parse_checksum(f" sha256:{DIGEST.upper()} ") == DIGEST
    with pytest.raises(rl.ReleaseError, match="bad checksum 'md5:abc'"):
        rl.parse_checksum("md5:abc")


def member(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    ("info", "reason"),
    [
        (member("app/main.py"), None),
        (member("app/bin", tarfile.DIRTYPE), None),
        (member("app/lib.so", tarfile.SYMTYPE, "lib.so.1"), None),
        (member("/etc/passwd"), "has an absolute path"),
        (member("app/../../x"), "has '..' in its path"),
        (member("app/dev", tarfile.CHRTYPE), "is a device, fifo or other special file"),
        (member("app/x", tarfile.SYMTYPE, "/etc/shadow"), "is a symlink to an absolute path (/etc/shadow)"),
        (
            member("x", tarfile.SYMTYPE, "../outside"),
            "is a symlink pointing outside the release (../outside)",
        ),
        (member("app/h", tarfile.LNKTYPE, "../x"), "is a hard link pointing outside the release (../x)"),
        (member("app/h", tarfile.LNKTYPE, "/etc/x"), "is a hard link pointing outside the release (/etc/x)"),
        (member("."), "would replace the release folder"),
    ],
)
def test_unsafe_member(info, reason):
    assert rl.unsafe_member(info) == reason


def state_with(versions, current=None, previous=None):
    return {"current": current, "previous": previous, "releases": [{"version": v} for v in versions]}


def test_prune_plan_keeps_current_previous_and_the_newest():
    versions = ["1", "2", "3", "4", "5"]
    folders = {version: {} for version in versions}
    state = state_with(versions, current="5", previous="4")
    assert rl.prune_plan(state, folders, keep=3) == ["1", "2"]
    assert rl.prune_plan(state, folders, keep=0) == []
    assert rl.prune_plan(state, folders, keep=1) == ["1", "2", "3"]


def test_prune_plan_never_touches_folders_it_did_not_record():
    state = state_with(["1", "2"], current="2")
    assert rl.prune_plan(state, {"2": {}, "manual": {}}, keep=1) == []


def test_fresh_state():
    assert rl.fresh_state() == {"format": 1, "current": None, "previous": None, "releases": [], "history": []}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (rl.Request(app_root="/srv/app", state="gone"), "bad state 'gone'"),
        (rl.Request(app_root="srv/app"), "app_root must be an absolute path"),
        (rl.Request(app_root="/srv/app", state="present"), "bad version None"),
        (rl.Request(app_root="/srv/app", keep=-1), "keep must not be negative"),
        (rl.Request(app_root="/srv/app", checksum="nope"), "bad checksum 'nope'"),
    ],
)
def test_validate_rejects(request_, message):
    with pytest.raises(rl.ReleaseError, match=message):
        rl.validate(request_)


def test_validate_accepts_a_rollback_without_version():
    rl.validate(rl.Request(app_root="/srv/app", state="rollback"))
