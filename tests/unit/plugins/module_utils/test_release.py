"""The release core (plugins/module_utils/release.py): its pure functions (versions, checksums, unsafe
archive members, pruning plans, request validation), then on real folders: unpacking with the top folder
stripped, checksums, idempotence, rollback, pruning, unsafe archives, repairs after a killed run, a
dangling `current`, check mode and its diff, and 20 deploys at once."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import TypeAlias

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils import release as rl

# The folder holding ansible_collections/ (the checkout's collections/, or ansible-test's root), for the
# concurrent deploys that run in fresh interpreters.
COLLECTIONS = Path(rl.__file__).parents[5]

# --------------------------------------------------------------------------------------------------
# Pure functions

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


# --------------------------------------------------------------------------------------------------
# On real folders

Entry: TypeAlias = "tuple[str, bytes | None]"  # (name, file content); None makes a folder


def make_tar(path: Path, entries: list[Entry], extra: list[tarfile.TarInfo | Entry] | None = None) -> Path:
    """A .tar.gz (or .tar, by suffix) of plain files and folders, then hand-made members (or more files)."""
    mode = "w" if path.suffix == ".tar" else "w:gz"
    with tarfile.open(path, mode) as archive:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
        for item in extra or []:
            if isinstance(item, tarfile.TarInfo):
                archive.addfile(item)
            else:
                info = tarfile.TarInfo(item[0])
                info.size = len(item[1] or b"")
                archive.addfile(info, io.BytesIO(item[1] or b""))
    return path


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def app_tar(tmp_path: Path, version: str, top: str | None = "app") -> Path:
    """A release tarball whose files sit under one top folder (as `tar czf x.tgz app/` makes)."""
    prefix = f"{top}/" if top else ""
    entries: list[Entry] = [(top, None)] if top else []
    entries += [
        (f"{prefix}run.py", f"VERSION = {version!r}\n".encode()),
        (f"{prefix}lib", None),
        (f"{prefix}lib/util.py", b"def util(): return 1\n"),
    ]
    return make_tar(tmp_path / f"app-{version}.tgz", entries)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def req(root: Path, state: str = "info", version: str | None = None, **kw) -> rl.Request:
    return rl.Request(app_root=str(root), state=state, version=version, **kw)


def deploy(root: Path, version: str, src: Path | None = None, **kw) -> dict:
    return rl.release(req(root, "current", version, src=str(src) if src else None, **kw))


def state_of(root: Path) -> dict:
    return json.loads((root / rl.STATE_FILE).read_text())


def link_of(root: Path) -> str:
    return os.readlink(root / "current")


def tree(root: Path) -> dict[str, tuple]:
    """Everything under root: type, mode, mtime, size, content hash or link target."""
    if not root.exists():
        return {}
    found: dict[str, tuple] = {"": ("dir", root.stat().st_mode, root.stat().st_mtime_ns)}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = ("dir", st.st_mode, st.st_mtime_ns)
            else:
                found[rel] = ("file", st.st_mode, st.st_mtime_ns, sha(path))
    return found


def leftovers(root: Path) -> list[str]:
    names = [p.name for p in (root / "releases").iterdir()] if (root / "releases").is_dir() else []
    names += [p.name for p in root.iterdir()] if root.is_dir() else []
    return [n for n in names if n.startswith((rl.TMP_PREFIX, rl.LINK_TMP_PREFIX, rl.STATE_TMP_PREFIX))]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "apps" / "coordinator-api"


# --------------------------------------------------------------------------------------------------
# Unpacking


def test_deploy_unpacks_with_the_top_folder_stripped_and_switches(tmp_path: Path, root: Path) -> None:
    src = app_tar(tmp_path, "1.0")
    result = deploy(root, "1.0", src, deployed_by="alice")

    release = root / "releases" / "1.0"
    assert (release / "run.py").read_text() == "VERSION = '1.0'\n"
    assert (release / "lib" / "util.py").is_file()
    assert not (release / "app").exists()
    assert link_of(root) == "releases/1.0"  # relative
    assert (root / "current" / "run.py").is_file()
    meta = json.loads((release / rl.META_FILE).read_text())
    assert meta["version"] == "1.0" and meta["sha256"] == sha(src) and meta["by"] == "alice"
    assert meta["unpacked_at"].endswith("Z")

    assert result["changed"] and result["current"] == "1.0" and result["previous"] is None
    assert result["switched"] == {"from": None, "to": "1.0"} and result["unpacked"] == "1.0"
    assert result["repaired"] is False and result["pruned"] == []
    assert result["releases"] == [
        {
            "version": "1.0",
            "path": str(release),
            "current": True,
            "previous": False,
            "unpacked_at": meta["unpacked_at"],
            "sha256": sha(src),
            "recorded": True,
        }
    ]
    state = state_of(root)
    assert state["current"] == "1.0" and state["previous"] is None and "pending" not in state
    assert [(h["version"], h["action"], h["by"]) for h in state["history"]] == [("1.0", "deploy", "alice")]
    assert result["diff"] == {
        "before": {"current": None, "releases": []},
        "after": {"current": "1.0", "releases": ["1.0"]},
    }
    assert leftovers(root) == []


def test_several_top_level_entries_are_unpacked_as_they_are(tmp_path: Path, root: Path) -> None:
    src = make_tar(
        tmp_path / "flat.tar", [("./", None), ("./run.py", b"x"), ("./lib", None), ("./lib/a", b"a")]
    )
    deploy(root, "2", src)
    release = root / "releases" / "2"
    assert sorted(p.name for p in release.iterdir()) == [rl.META_FILE, "lib", "run.py"]


def test_a_single_top_level_file_is_not_stripped(tmp_path: Path, root: Path) -> None:
    deploy(root, "3", make_tar(tmp_path / "one.tgz", [("app.jar", b"jar")]))
    assert (root / "releases" / "3" / "app.jar").read_bytes() == b"jar"


def test_a_folder_src_is_copied(tmp_path: Path, root: Path) -> None:
    src = tmp_path / "build"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "run").write_text("#!/bin/sh\n")
    (src / "bin" / "run").chmod(0o755)
    (src / "link").symlink_to("bin/run")
    result = deploy(root, "1", src)
    release = root / "releases" / "1"
    assert (release / "bin" / "run").stat().st_mode & 0o777 == 0o755
    assert os.readlink(release / "link") == "bin/run"
    assert json.loads((release / rl.META_FILE).read_text())["sha256"] is None
    assert result["current"] == "1"
    with pytest.raises(rl.ReleaseError, match="is a folder"):
        rl.release(req(root, "present", "2", src=str(src), checksum="0" * 64))


def test_setuid_bits_are_dropped_and_files_belong_to_us(tmp_path: Path, root: Path) -> None:
    info = tarfile.TarInfo("tool")
    info.size, info.mode, info.uid, info.gid, info.uname = 2, 0o4755, 4242, 4242, "nobody-here"
    path = tmp_path / "suid.tar"
    with tarfile.open(path, "w") as archive:
        archive.addfile(info, io.BytesIO(b"#!"))
    rl.release(req(root, "present", "1", src=str(path)))
    st = (root / "releases" / "1" / "tool").stat()
    assert st.st_mode & 0o7777 == 0o755
    assert st.st_uid == os.geteuid()


# --------------------------------------------------------------------------------------------------
# Checksums and idempotence


def test_checksum_mismatch_fails_before_anything_is_unpacked(tmp_path: Path, root: Path) -> None:
    src = app_tar(tmp_path, "1.0")
    with pytest.raises(rl.ReleaseError, match="checksum mismatch") as err:
        deploy(root, "1.0", src, checksum="sha256:" + "0" * 64)
    assert sha(src) in str(err.value) and "\n" not in str(err.value)
    assert not (root / "releases" / "1.0").exists()
    assert leftovers(root) == [] and not (root / "current").exists()
    # both spellings of the right checksum pass
    assert deploy(root, "1.0", src, checksum="sha256:" + sha(src).upper())["changed"]
    assert rl.release(req(root, "present", "1.0", src=str(src), checksum=sha(src)))["changed"] is False
    with pytest.raises(rl.ReleaseError, match="bad checksum"):
        rl.release(req(root, "present", "1.0", src=str(src), checksum="md5:abc"))


def test_second_deploy_of_the_same_version_changes_nothing(tmp_path: Path, root: Path) -> None:
    src = app_tar(tmp_path, "1.0")
    deploy(root, "1.0", src)
    before = tree(root)
    again = deploy(root, "1.0", src, checksum=sha(src))
    assert again["changed"] is False and again["switched"] is None and again["unpacked"] is None
    assert again["current"] == "1.0" and again["msg"] == "current 1.0, previous (none), 1 release"
    assert tree(root) == before
    # a present of an unpacked release does not unpack it again, with or without src
    assert rl.release(req(root, "present", "1.0", src=str(src)))["changed"] is False
    assert rl.release(req(root, "present", "1.0"))["changed"] is False
    assert tree(root) == before


def test_an_existing_release_is_never_overwritten_by_another_artifact(tmp_path: Path, root: Path) -> None:
    deploy(root, "1.0", app_tar(tmp_path, "1.0"))
    other = make_tar(tmp_path / "other.tgz", [("app", None), ("app/run.py", b"other")])
    before = tree(root)
    with pytest.raises(rl.ReleaseError, match="already exists with sha256 .* refusing to overwrite"):
        deploy(root, "1.0", other)
    with pytest.raises(rl.ReleaseError, match="already exists"):
        rl.release(req(root, "present", "1.0", checksum=sha(other)))
    assert tree(root) == before


def test_missing_src_and_bad_version_fail_clearly(tmp_path: Path, root: Path) -> None:
    with pytest.raises(rl.ReleaseError, match="not unpacked .* no src"):
        deploy(root, "1.0")
    with pytest.raises(rl.ReleaseError, match="src not found on the host"):
        deploy(root, "1.0", tmp_path / "nope.tgz")
    for bad in ("../x", ".hidden", "a/b", "", "v1\n"):
        with pytest.raises(rl.ReleaseError, match="bad version"):
            deploy(root, bad, app_tar(tmp_path, "1"))
    not_tar = tmp_path / "junk.tgz"
    not_tar.write_bytes(b"not an archive at all")
    with pytest.raises(rl.ReleaseError, match="not a readable tar archive"):
        deploy(root, "1", not_tar)
    assert not (root / "releases" / "1").exists()


# --------------------------------------------------------------------------------------------------
# Rollback, removal, pruning


def test_rollback_to_previous_then_forward_again_and_to_a_named_release(tmp_path: Path, root: Path) -> None:
    for version in ("1", "2", "3"):
        deploy(root, version, app_tar(tmp_path, version))
    back = rl.release(req(root, "rollback", deployed_by="bob", reason="gate failed"))
    assert back["switched"] == {"from": "3", "to": "2"} and back["current"] == "2" and back["previous"] == "3"
    assert link_of(root) == "releases/2"
    last = state_of(root)["history"][-1]
    assert last == {
        **last,
        "version": "2",
        "from": "3",
        "action": "rollback",
        "by": "bob",
        "reason": "gate failed",
    }

    forward = rl.release(req(root, "rollback"))  # the previous one is now 3
    assert forward["switched"] == {"from": "2", "to": "3"} and link_of(root) == "releases/3"

    named = rl.release(req(root, "rollback", "1"))
    assert named["switched"] == {"from": "3", "to": "1"} and named["previous"] == "3"
    assert rl.release(req(root, "rollback", "1"))["changed"] is False

    with pytest.raises(rl.ReleaseError, match="cannot roll back to 9"):
        rl.release(req(root, "rollback", "9"))
    assert [h["action"] for h in state_of(root)["history"]] == ["deploy"] * 3 + ["rollback"] * 3


def test_rollback_without_previous_fails(tmp_path: Path, root: Path) -> None:
    deploy(root, "1", app_tar(tmp_path, "1"))
    with pytest.raises(rl.ReleaseError, match="no previous release recorded"):
        rl.release(req(root, "rollback"))


def test_absent_needs_confirm_and_never_removes_current_or_previous(tmp_path: Path, root: Path) -> None:
    for version in ("1", "2", "3"):
        deploy(root, version, app_tar(tmp_path, version))
    with pytest.raises(rl.ReleaseError, match="confirm"):
        rl.release(req(root, "absent", "1"))
    for protected, what in (("3", "current"), ("2", "previous")):
        with pytest.raises(rl.ReleaseError, match=f"it is the {what} release"):
            rl.release(req(root, "absent", protected, confirm=True))
    check = rl.release(req(root, "absent", "1", confirm=True, check_mode=True))
    assert check["changed"] and check["removed"] == "1" and (root / "releases" / "1").is_dir()
    done = rl.release(req(root, "absent", "1", confirm=True))
    assert done["removed"] == "1" and not (root / "releases" / "1").exists()
    assert [r["version"] for r in state_of(root)["releases"]] == ["2", "3"]
    assert rl.release(req(root, "absent", "1", confirm=True))["changed"] is False
    assert leftovers(root) == []


def test_prune_keeps_current_previous_and_keep(tmp_path: Path, root: Path) -> None:
    (root / "releases" / "hand-made").mkdir(parents=True)  # not recorded: never pruned
    for version in ("1", "2", "3", "4"):
        deploy(root, version, app_tar(tmp_path, version), keep=0)  # 0: keep all
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["1", "2", "3", "4", "hand-made"]

    back = rl.release(req(root, "rollback", "1", keep=3))  # current 1, previous 4, newest other: 3
    assert back["pruned"] == ["2"]
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["1", "3", "4", "hand-made"]

    result = deploy(root, "5", app_tar(tmp_path, "5"), keep=2)  # current 5, previous 1
    assert result["pruned"] == ["3", "4"] and result["previous"] == "1"
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["1", "5", "hand-made"]
    assert [r["version"] for r in state_of(root)["releases"]] == ["1", "5"]
    hand = next(r for r in result["releases"] if r["version"] == "hand-made")
    assert hand["recorded"] is False and hand["unpacked_at"] is None

    result = deploy(root, "6", app_tar(tmp_path, "6"), keep=1)  # keep < 2 still keeps both
    assert result["pruned"] == ["1"] and sorted(p.name for p in (root / "releases").iterdir()) == [
        "5",
        "6",
        "hand-made",
    ]
    assert leftovers(root) == []


def test_prune_only_after_a_switch(tmp_path: Path, root: Path) -> None:
    for version in ("1", "2", "3"):
        deploy(root, version, app_tar(tmp_path, version), keep=0)
    assert deploy(root, "3", keep=2)["changed"] is False  # no switch, nothing pruned
    assert len(list((root / "releases").iterdir())) == 3


# --------------------------------------------------------------------------------------------------
# Unsafe archives


def special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


def hardlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info


UNSAFE = {
    "dotdot": ([("app", None), ("app/ok.py", b"ok"), ("../evil", b"pwned")], [], "'..'"),
    "dotdot-inside": ([("app/../../evil", b"pwned")], [], "'..'"),
    "absolute": ([("/tmp/evil-release-test", b"pwned")], [], "absolute path"),
    "symlink-absolute": ([], [symlink("app/etc", "/etc")], "symlink to an absolute path"),
    "symlink-up": ([("app", None)], [symlink("app/up", "../../..")], "pointing outside"),
    "hardlink-out": ([], [hardlink("app/passwd", "/etc/passwd")], "hard link"),
    "device": ([], [special("app/null", tarfile.CHRTYPE)], "device"),
    "fifo": ([], [special("app/pipe", tarfile.FIFOTYPE)], "device, fifo"),
    # Each link looks harmless alone; together `d` is the release's parent, and `d/evil` would land there.
    "symlink-chain": (
        [("a", None)],
        [
            symlink("a/x", "."),
            symlink("a/d", "x/.."),
            symlink("x", "a"),
            symlink("d", "x/.."),
            symlink("e", "d/.."),
        ],
        "outside",
    ),
    "link-through-link": (
        [("a", None)],
        [symlink("self", "."), symlink("up", "self/..")],
        "pointing outside",
    ),
    # `d` is checked while `x` does not exist (d -> x/.. is the release then); `x -> .` makes it its parent.
    "late-redirect-write": (
        [],
        [symlink("d", "x/.."), symlink("x", "."), ("d/evil", b"pwned")],
        "written outside",
    ),
    # Inside the archive, but outside the release once the top folder is stripped.
    "strip-escape": ([("app", None), ("app/run.py", b"x")], [symlink("app/all", "..")], "resolves outside"),
    "late-redirect-link": ([("a", None)], [symlink("d", "x/.."), symlink("x", ".")], "resolves outside"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archives_are_refused_and_leave_nothing_behind(tmp_path: Path, root: Path, case: str) -> None:
    entries, extra, reason = UNSAFE[case]
    src = make_tar(tmp_path / "evil.tar", entries, extra)
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(rl.ReleaseError, match="unsafe archive") as err:
        deploy(root, "1", src)
    assert reason in str(err.value) and "nothing was unpacked" in str(err.value)
    assert not (root / "releases" / "1").exists()
    assert leftovers(root) == [] and not (root / "current").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "apps") == outside_before
    assert [p.name for p in (tmp_path / "apps").iterdir()] == [root.name]
    assert sorted(p.name for p in root.iterdir()) == [rl.LOCK_FILE, "releases"]
    assert not Path("/tmp/evil-release-test").exists()


def test_links_inside_the_release_are_fine(tmp_path: Path, root: Path) -> None:
    src = make_tar(
        tmp_path / "links.tgz",
        [("app", None), ("app/lib", None), ("app/lib/libx.so.1", b"elf")],
        [
            symlink("app/lib/libx.so", "libx.so.1"),
            symlink("app/bin", "lib"),
            hardlink("app/copy", "app/lib/libx.so.1"),
        ],
    )
    deploy(root, "1", src)
    release = root / "releases" / "1"
    assert (release / "lib" / "libx.so").read_bytes() == b"elf"
    assert os.readlink(release / "bin") == "lib"
    assert (release / "copy").read_bytes() == b"elf"


# --------------------------------------------------------------------------------------------------
# Killed runs and damage


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs (BaseException passes every `except Exception`)."""


def test_crash_between_switch_and_state_write_is_repaired(tmp_path: Path, root: Path, monkeypatch) -> None:
    deploy(root, "1", app_tar(tmp_path, "1"), deployed_by="alice")
    real_switch = rl.switch_current

    def switch_then_die(layout: rl.Layout, version: str) -> None:
        real_switch(layout, version)
        raise Killed

    monkeypatch.setattr(rl, "switch_current", switch_then_die)
    with pytest.raises(Killed):
        deploy(root, "2", app_tar(tmp_path, "2"), deployed_by="alice")
    monkeypatch.undo()

    assert link_of(root) == "releases/2"  # the switch happened ...
    stale = state_of(root)
    assert stale["current"] == "1" and stale["pending"]["to"] == "2"  # ... the state write did not

    info = rl.release(req(root))  # info reports, repairs nothing
    assert info["current"] == "2" and info["repaired"] is False and "needs repair" in info["msg"]
    assert state_of(root) == stale

    fixed = deploy(root, "2", deployed_by="carol")
    assert fixed["repaired"] is True and fixed["changed"] is True and fixed["switched"] is None
    assert fixed["current"] == "2" and fixed["previous"] == "1"
    assert "completed the interrupted deploy to 2" in fixed["msg"]
    state = state_of(root)
    assert state["current"] == "2" and state["previous"] == "1" and "pending" not in state
    assert [(h["version"], h["action"], h["by"]) for h in state["history"]] == [
        ("1", "deploy", "alice"),
        ("2", "deploy", "alice"),  # recorded as the switch it was, by whom it was
    ]
    assert deploy(root, "2")["changed"] is False  # and then it is settled


def test_crash_before_the_switch_drops_the_pending_switch(tmp_path: Path, root: Path, monkeypatch) -> None:
    deploy(root, "1", app_tar(tmp_path, "1"))

    def die_with_the_temp_link(layout: rl.Layout, version: str) -> None:
        os.symlink(f"releases/{version}", os.path.join(layout.app_root, f"{rl.LINK_TMP_PREFIX}{os.getpid()}"))
        raise Killed

    monkeypatch.setattr(rl, "switch_current", die_with_the_temp_link)
    with pytest.raises(Killed):
        deploy(root, "2", app_tar(tmp_path, "2"))
    monkeypatch.undo()
    assert link_of(root) == "releases/1" and leftovers(root) == [f"{rl.LINK_TMP_PREFIX}{os.getpid()}"]

    result = rl.release(req(root, "present", "2"))
    assert (
        result["repaired"]
        and result["current"] == "1"
        and "dropped the unfinished switch to 2" in result["msg"]
    )
    assert leftovers(root) == [] and "pending" not in state_of(root)
    assert [h["version"] for h in state_of(root)["history"]] == ["1"]


def test_a_switch_made_by_hand_is_adopted(tmp_path: Path, root: Path) -> None:
    for version in ("1", "2"):
        deploy(root, version, app_tar(tmp_path, version))
    os.symlink("releases/1", root / "current.hand")
    os.replace(root / "current.hand", root / "current")  # state still says 2
    result = rl.release(req(root, "present", "1", deployed_by="ops"))
    assert result["repaired"] and result["current"] == "1" and result["previous"] == "2"
    assert state_of(root)["history"][-1] == {**state_of(root)["history"][-1], "action": "repair", "from": "2"}


def test_a_release_unpacked_but_not_recorded_is_adopted(tmp_path: Path, root: Path, monkeypatch) -> None:
    deploy(root, "1", app_tar(tmp_path, "1"))

    def die(layout: rl.Layout, state: dict) -> None:
        raise Killed

    monkeypatch.setattr(rl, "write_state", die)
    with pytest.raises(Killed):
        rl.release(req(root, "present", "2", src=str(app_tar(tmp_path, "2"))))
    monkeypatch.undo()
    assert (root / "releases" / "2" / "run.py").is_file()
    assert [r["version"] for r in state_of(root)["releases"]] == ["1"]

    result = deploy(root, "2")
    assert result["repaired"] and "recorded release 2" in result["msg"] and result["unpacked"] is None
    assert [r["version"] for r in state_of(root)["releases"]] == ["1", "2"]
    assert result["switched"] == {"from": "1", "to": "2"}


def test_leftovers_of_a_killed_unpack_are_removed(tmp_path: Path, root: Path) -> None:
    deploy(root, "1", app_tar(tmp_path, "1"))
    half = root / "releases" / ".tmp-2-99999" / "content"
    half.mkdir(parents=True)
    (half / "run.py").write_text("half")
    assert rl.release(req(root))["releases"][0]["version"] == "1"  # never listed as a release
    result = rl.release(req(root, "present", "1"))
    assert result["repaired"] and ".tmp-2-99999" in result["msg"] and leftovers(root) == []


def test_dangling_current_is_reported_and_fixed(tmp_path: Path, root: Path) -> None:
    for version in ("1", "2"):
        deploy(root, version, app_tar(tmp_path, version))
    os.rename(root / "releases" / "2", tmp_path / "moved-away")  # damage by hand

    info = rl.release(req(root))
    assert info["current"] is None and info["changed"] is False
    assert info["problems"] == ["current points to releases/2, which is missing (dangling)"]
    assert info["diff"] == {"before": {}, "after": {}}
    assert rl.release(req(root, "present", "1"))["problems"]  # present does not switch

    fixed = rl.release(req(root, "rollback"))
    assert fixed["switched"] == {"from": None, "to": "1"} and fixed["current"] == "1"
    assert fixed["problems"] == [] and fixed["diff"] == {
        "before": {"current": "releases/2 (missing)", "previous": "1"},
        "after": {"current": "1", "previous": None},
    }
    assert link_of(root) == "releases/1" and (root / "current" / "run.py").is_file()
    assert rl.release(req(root))["problems"] == []


def test_dangling_current_is_fixed_by_a_deploy(tmp_path: Path, root: Path) -> None:
    deploy(root, "1", app_tar(tmp_path, "1"))
    (root / "current").unlink()
    assert rl.release(req(root))["problems"] == ["the current symlink is missing (the state says 1)"]
    result = deploy(root, "1")
    assert result["switched"] == {"from": None, "to": "1"} and link_of(root) == "releases/1"


def test_a_real_folder_as_current_is_refused(tmp_path: Path, root: Path) -> None:
    (root / "current").mkdir(parents=True)
    with pytest.raises(rl.ReleaseError, match="is not a symlink"):
        deploy(root, "1", app_tar(tmp_path, "1"))


def test_a_damaged_state_file_is_not_silently_replaced(tmp_path: Path, root: Path) -> None:
    deploy(root, "1", app_tar(tmp_path, "1"))
    (root / rl.STATE_FILE).write_text("{not json")
    with pytest.raises(rl.ReleaseError, match="move it aside"):
        deploy(root, "2", app_tar(tmp_path, "2"))
    assert link_of(root) == "releases/1"


# --------------------------------------------------------------------------------------------------
# Check mode, info


def test_check_mode_changes_nothing(tmp_path: Path, root: Path) -> None:
    for version in ("1", "2", "3"):
        deploy(root, version, app_tar(tmp_path, version))
    (root / "releases" / ".tmp-9-12345").mkdir()  # a leftover that a real run would remove
    before = tree(root)

    plan = deploy(root, "4", app_tar(tmp_path, "4"), keep=3, check_mode=True)
    assert tree(root) == before
    assert plan["changed"] and plan["unpacked"] == "4" and plan["switched"] == {"from": "3", "to": "4"}
    assert plan["pruned"] == ["1"] and plan["current"] == "4" and plan["previous"] == "3"
    assert "would unpack 4" in plan["msg"] and "would switch from 3 to 4" in plan["msg"]
    assert "would prune 1" in plan["msg"] and "would repair" in plan["msg"]
    assert plan["diff"] == {
        "before": {"current": "3", "previous": "2", "releases": ["1", "2", "3"]},
        "after": {"current": "4", "previous": "3", "releases": ["2", "3", "4"]},
    }

    assert rl.release(req(root, "rollback", check_mode=True))["switched"] == {"from": "3", "to": "2"}
    with pytest.raises(rl.ReleaseError, match="checksum mismatch"):
        deploy(root, "4", app_tar(tmp_path, "4"), checksum="0" * 64, check_mode=True)
    with pytest.raises(rl.ReleaseError, match="unsafe archive"):
        deploy(root, "5", make_tar(tmp_path / "e.tgz", [("../evil", b"x")]), check_mode=True)
    assert tree(root) == before


def test_check_mode_and_info_on_a_new_app_root_create_nothing(tmp_path: Path, root: Path) -> None:
    info = rl.release(req(root))
    assert info == {
        **info,
        "changed": False,
        "current": None,
        "previous": None,
        "releases": [],
        "history": [],
    }
    plan = deploy(root, "1", app_tar(tmp_path, "1"), check_mode=True)
    assert plan["changed"] and plan["switched"] == {"from": None, "to": "1"}
    assert not root.exists()


def test_deployed_by_defaults_to_the_sudo_user(tmp_path: Path, root: Path, monkeypatch) -> None:
    monkeypatch.setenv("SUDO_USER", "dana")
    deploy(root, "1", app_tar(tmp_path, "1"))
    assert state_of(root)["history"][-1]["by"] == "dana"
    monkeypatch.delenv("SUDO_USER")
    assert rl.default_user() and rl.default_user() != "dana"


# --------------------------------------------------------------------------------------------------
# Concurrency

DEPLOY_ONE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.aitbc.ops.plugins.module_utils import release as rl
result = rl.release(rl.Request(app_root=sys.argv[2], state="current", version=sys.argv[3], src=sys.argv[4]))
print(json.dumps(result))
"""


def test_twenty_concurrent_deploys_leave_a_valid_current_and_a_consistent_state(
    tmp_path: Path, root: Path
) -> None:
    versions = [f"v{i:02d}" for i in range(20)]
    tarballs = {v: app_tar(tmp_path, v) for v in versions}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DEPLOY_ONE, str(COLLECTIONS), str(root), v, str(tarballs[v])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in versions
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _out, err in outputs if err]
    results = [json.loads(out) for out, _err in outputs]
    assert all(r["switched"]["to"] == v for r, v in zip(results, versions, strict=True))

    state = state_of(root)
    current = link_of(root)
    assert current == f"releases/{state['current']}"
    assert (root / "current" / "run.py").read_text() == f"VERSION = {state['current']!r}\n"
    history = state["history"]
    assert sorted(h["version"] for h in history) == versions and {h["action"] for h in history} == {"deploy"}
    # serialised: every deploy switched from the one before it
    assert [h["from"] for h in history] == [None] + [h["version"] for h in history[:-1]]
    assert state["previous"] == history[-2]["version"] and state["current"] == history[-1]["version"]
    on_disk = sorted(p.name for p in (root / "releases").iterdir())
    assert on_disk == sorted(r["version"] for r in state["releases"]) and len(on_disk) == 5
    assert {state["current"], state["previous"]} <= set(on_disk)
    for version in on_disk:
        meta = json.loads((root / "releases" / version / rl.META_FILE).read_text())
        assert meta["sha256"] == sha(tarballs[version])
    assert leftovers(root) == [] and "pending" not in state


def test_absolute_links_are_understood_and_foreign_ones_replaced(tmp_path: Path, root: Path) -> None:
    for version in ("1", "2"):
        deploy(root, version, app_tar(tmp_path, version))
    (root / "current").unlink()
    (root / "current").symlink_to(root / "releases" / "1")  # as ansistrano makes it: absolute
    result = rl.release(req(root, "present", "1"))
    assert result["current"] == "1" and result["repaired"] and result["previous"] == "2"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "current").unlink()
    (root / "current").symlink_to(elsewhere)
    info = rl.release(req(root))
    assert info["current"] is None and info["problems"] == [
        f"current points to {elsewhere}, which is not under releases/"
    ]
    assert info["diff"] == {"before": {}, "after": {}}
    redeployed = deploy(root, "2")
    assert redeployed["switched"] == {"from": None, "to": "2"} and link_of(root) == "releases/2"
    assert redeployed["diff"] == {
        "before": {"current": f"{elsewhere} (not a release)", "previous": "2"},
        "after": {"current": "2", "previous": None},
    }
    assert elsewhere.is_dir()
