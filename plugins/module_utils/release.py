# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release folders (ansistrano-style) with a recorded state: unpack, switch, roll back, prune.

Shipped to managed hosts with the aitbc.ops.release module: the standard library only (Python 3.11.2 on
the hosts, so tarfile's ``filter=`` is not relied on: members are checked here).

Layout under an app root::

    releases/<version>/          one folder per release, with .release.json (version, sha256, when, by)
    current -> releases/<version>  the release in service (a relative symlink, switched atomically)
    .release-state.json          current, previous, the recorded releases and the history
    .release.lock                flock'ed for the whole of every run that changes anything

The symlink is the truth for ``current``: the state file is written after the switch, so a run killed in
between leaves a state that disagrees with the symlink, and the next run repairs it. Before a switch the
state records the switch it is about to make (``pending``), so the repair can log it as what it was.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import os
import posixpath
import pwd
import re
import shutil
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.aitbc.ops.plugins.module_utils._files import (
    atomic_write,
    describe_os_error,
    fsync_dir,
)
from ansible_collections.aitbc.ops.plugins.module_utils._text import utcnow_iso

FORMAT = 1
VERSION_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._+-]{0,199}\Z")
CHECKSUM_RE = re.compile(r"\A(?:sha256:)?([0-9a-fA-F]{64})\Z")
RELEASES = "releases"
CURRENT = "current"
STATE_FILE = ".release-state.json"
LOCK_FILE = ".release.lock"
META_FILE = ".release.json"
TMP_PREFIX = ".tmp-"  # releases/.tmp-<version>-<pid>: an unpack or a removal in progress
LINK_TMP_PREFIX = CURRENT + ".tmp-"
STATE_TMP_PREFIX = STATE_FILE + ".tmp-"
HISTORY_KEPT = 200  # entries kept in the state file
HISTORY_SHOWN = 20  # entries returned
LOCK_TIMEOUT = 600.0
CHUNK = 1024 * 1024
STATES = ("present", "current", "rollback", "absent", "info")
# Python >= 3.11.4 takes filter=; members are checked before extraction, so ask it to change nothing (the
# same result on the hosts' 3.11.2, and no DeprecationWarning on 3.12+).
_EXTRACT_KW: dict[str, Any] = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


class ReleaseError(Exception):
    """A release operation that cannot go on. The message is one line for the user."""


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def default_user() -> str:
    """Who runs the module: the user behind sudo, else the effective user."""
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user:
        return sudo_user
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def check_version(version: str | None, what: str = "version") -> str:
    if not version or not VERSION_RE.match(version):
        raise ReleaseError(
            f"bad {what} {version!r}: letters, digits, '.', '_', '+' and '-', starting with a letter or digit"
        )
    return version


def parse_checksum(text: str | None) -> str | None:
    """The hex sha256 of ``sha256:<hex>`` or ``<hex>``; None when not given."""
    if not text:
        return None
    match = CHECKSUM_RE.match(text.strip())
    if not match:
        raise ReleaseError(f"bad checksum {text!r}: expected sha256:<64 hex digits> or 64 hex digits")
    return match.group(1).lower()


def fsync_tree(root: str) -> None:
    """Flush every file and folder of a new release before it gets its name."""
    for folder, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue  # unreadable to us (mode 000): nothing we can flush
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(folder)


def write_json_atomic(path: str, data: dict) -> None:
    """Replace `path` with `data` as JSON, atomically. The temp file is `<path>.tmp-<pid>`: the name
    `inspect` finds as the leftover of a killed run."""
    body = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
    atomic_write(path, body, 0o644, tmp=f"{path}.tmp-{os.getpid()}")


def remove_path(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


@dataclass(frozen=True)
class Layout:
    """The paths under one app root."""

    app_root: str

    @property
    def releases(self) -> str:
        return os.path.join(self.app_root, RELEASES)

    @property
    def current(self) -> str:
        return os.path.join(self.app_root, CURRENT)

    @property
    def state_file(self) -> str:
        return os.path.join(self.app_root, STATE_FILE)

    @property
    def lock_file(self) -> str:
        return os.path.join(self.app_root, LOCK_FILE)

    def release(self, version: str) -> str:
        return os.path.join(self.releases, version)

    def tmp(self, version: str, suffix: str = "") -> str:
        return os.path.join(self.releases, f"{TMP_PREFIX}{version}-{os.getpid()}{suffix}")


@contextmanager
def locked(layout: Layout, exclusive: bool, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """flock on <app_root>/.release.lock: exclusive for runs that change things, shared for reads (which
    never create the lock file: without it there is nothing to wait for)."""
    if not os.path.isdir(layout.app_root):
        yield
        return
    if exclusive:
        fd = os.open(layout.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    else:
        try:
            fd = os.open(layout.lock_file, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            yield
            return
    try:
        _flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, layout.lock_file, timeout)
        yield
    finally:
        os.close(fd)  # releases the lock


def _flock(fd: int, mode: int, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise ReleaseError(
                    f"another release run holds {path} for more than {timeout:.0f} s"
                ) from None
            time.sleep(0.05)


# --------------------------------------------------------------------------------------------------
# What is on disk
# --------------------------------------------------------------------------------------------------


@dataclass
class Link:
    """The `current` symlink as found."""

    exists: bool = False
    is_link: bool = False
    target: str | None = None
    version: str | None = None  # the release it names, when it names releases/<version>
    valid: bool = False  # names a release folder that exists

    def shown(self) -> str | None:
        """What `current` names, for the diff: a version, a target that is not a release, or None."""
        if self.valid:
            return self.version
        if self.is_link and self.version:
            return f"{self.target} (missing)"
        if self.is_link:
            return f"{self.target} (not a release)"
        return None


@dataclass
class Snapshot:
    """One look at an app root: its release folders, the symlink, the state file and any leftovers."""

    folders: dict[str, dict | None]  # version -> its .release.json (None when missing or unreadable)
    link: Link
    state: dict
    state_found: bool
    leftovers: list[str]


def fresh_state() -> dict:
    return {"format": FORMAT, "current": None, "previous": None, "releases": [], "history": []}


def load_state(path: str) -> tuple[dict, bool]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return fresh_state(), False
    except (OSError, ValueError) as exc:
        raise ReleaseError(
            f"cannot read the release state {path}: {exc}; move it aside to rebuild it from the releases"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("releases", []), list):
        raise ReleaseError(f"release state {path} is not a state file; move it aside to rebuild it")
    state = fresh_state()
    state.update(data)
    state["releases"] = [r for r in state["releases"] if isinstance(r, dict) and r.get("version")]
    state["history"] = [h for h in state.get("history") or [] if isinstance(h, dict)]
    return state, True


def read_meta(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, META_FILE), encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def read_link(layout: Layout, folders: dict[str, dict | None]) -> Link:
    path = layout.current
    if not os.path.lexists(path):
        return Link()
    if not os.path.islink(path):
        return Link(exists=True)
    target = os.readlink(path)
    # Relative (ours) or absolute (ansistrano's), possibly through another path to the same folder.
    parent, name = posixpath.split(posixpath.normpath(posixpath.join(layout.app_root, target)))
    in_releases = parent == layout.releases or os.path.realpath(parent) == os.path.realpath(layout.releases)
    version = name if in_releases and VERSION_RE.match(name) else None
    return Link(True, True, target, version, version is not None and version in folders)


def inspect(layout: Layout) -> Snapshot:
    folders: dict[str, dict | None] = {}
    leftovers: list[str] = []
    if os.path.isdir(layout.releases):
        for name in sorted(os.listdir(layout.releases)):
            path = os.path.join(layout.releases, name)
            if name.startswith(TMP_PREFIX):
                leftovers.append(path)
            elif VERSION_RE.match(name) and os.path.isdir(path) and not os.path.islink(path):
                folders[name] = read_meta(path)
    if os.path.isdir(layout.app_root):
        for name in sorted(os.listdir(layout.app_root)):
            if name.startswith((LINK_TMP_PREFIX, STATE_TMP_PREFIX)):
                leftovers.append(os.path.join(layout.app_root, name))
    state, found = load_state(layout.state_file)
    return Snapshot(folders, read_link(layout, folders), state, found, leftovers)


# --------------------------------------------------------------------------------------------------
# Artifacts and safe unpacking
# --------------------------------------------------------------------------------------------------


@dataclass
class Artifact:
    """The src of a release on the host: a folder, or a tar archive kept open from checksum to unpack."""

    path: str
    sha256: str | None = None
    handle: Any = None
    archive: tarfile.TarFile | None = None

    @property
    def is_dir(self) -> bool:
        return self.archive is None

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()
        if self.handle is not None:
            self.handle.close()


def open_artifact(src: str, expected: str | None) -> Artifact:
    """Open src, check its sha256 against ``expected`` and every archive member; nothing is unpacked."""
    if os.path.isdir(src):
        if expected:
            raise ReleaseError(f"checksum is the sha256 of a tarball, but src {src} is a folder")
        return Artifact(src)
    if not os.path.isfile(src):
        raise ReleaseError(f"src not found on the host: {src} (copy the artifact to the host first)")
    handle = open(src, "rb")  # noqa: SIM115 - kept open until the unpack, closed by Artifact.close
    artifact = Artifact(src, handle=handle)
    try:
        digest = hashlib.sha256()
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
        artifact.sha256 = digest.hexdigest()
        if expected and expected != artifact.sha256:
            raise ReleaseError(
                f"checksum mismatch for {src}: expected sha256 {expected}, the file has {artifact.sha256}; "
                "nothing was unpacked"
            )
        handle.seek(0)
        try:
            artifact.archive = tarfile.open(fileobj=handle, mode="r:*")  # noqa: SIM115
            members = artifact.archive.getmembers()
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise ReleaseError(f"src {src} is not a readable tar archive: {exc}") from exc
        if not members:
            raise ReleaseError(f"src {src} is an empty archive")
        for member in members:
            reason = unsafe_member(member)
            if reason:
                raise ReleaseError(f"unsafe archive {src}: {member.name!r} {reason}; nothing was unpacked")
    except BaseException:
        artifact.close()
        raise
    return artifact


def unsafe_member(member: tarfile.TarInfo) -> str | None:
    """Why a member may not be unpacked, from its names alone (None when it may)."""
    name = member.name
    if name.startswith("/"):
        return "has an absolute path"
    if ".." in name.split("/"):
        return "has '..' in its path"
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        return "is a device, fifo or other special file"
    normal = posixpath.normpath(name)
    if normal == "." and not member.isdir():
        return "would replace the release folder"
    if member.issym():
        if not member.linkname or member.linkname.startswith("/"):
            return f"is a symlink to an absolute path ({member.linkname or 'empty'})"
        target = posixpath.normpath(posixpath.join(posixpath.dirname(normal), member.linkname))
        if target == ".." or target.startswith("../"):
            return f"is a symlink pointing outside the release ({member.linkname})"
    if member.islnk() and (member.linkname.startswith("/") or ".." in member.linkname.split("/")):
        return f"is a hard link pointing outside the release ({member.linkname})"
    return None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _escapes(member: tarfile.TarInfo, root: str, target: str) -> str | None:
    """Why extracting ``member`` at ``target`` would leave ``root``, given the links already unpacked."""
    if not _inside(os.path.realpath(target), root) or os.path.realpath(target) == root:
        return "would be written outside the release (through a symlink)"
    if member.issym():
        pointed = os.path.realpath(os.path.join(os.path.dirname(target), member.linkname))
        if not _inside(pointed, root):
            return f"is a symlink pointing outside the release ({member.linkname})"
    if member.islnk() and not _inside(os.path.realpath(os.path.join(root, member.linkname)), root):
        return f"is a hard link pointing outside the release ({member.linkname})"
    return None


def _tamed(member: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    """The member under its normalised name, owned by us, without setuid/setgid/sticky bits."""
    tamed = copy.copy(member)
    tamed.name = name
    tamed.mode = member.mode & 0o777
    tamed.uid, tamed.gid, tamed.uname, tamed.gname = os.geteuid(), os.getegid(), "", ""
    return tamed


def extract_archive(artifact: Artifact, dest: str) -> None:
    """Unpack member by member into ``dest`` (an empty folder), checking against what is already on disk
    that nothing lands outside it; folder modes are applied last (a read-only folder can still be filled)."""
    if artifact.archive is None:
        raise AssertionError("extract_archive needs an opened artifact")
    root = os.path.realpath(dest)
    folders: list[tarfile.TarInfo] = []
    for member in artifact.archive.getmembers():
        name = posixpath.normpath(member.name)
        if name == ".":
            continue
        target = os.path.join(root, name)
        reason = _escapes(member, root, target)
        if reason:
            raise ReleaseError(
                f"unsafe archive {artifact.path}: {member.name!r} {reason}; nothing was unpacked"
            )
        tamed = _tamed(member, name)
        if member.isdir():
            folders.append(tamed)
            os.makedirs(target, mode=0o700, exist_ok=True)
            continue
        artifact.archive.extract(tamed, root, set_attrs=True, numeric_owner=True, **_EXTRACT_KW)
    for folder in reversed(folders):
        reason = _escapes(folder, root, os.path.join(root, folder.name))
        if reason:
            raise ReleaseError(
                f"unsafe archive {artifact.path}: {folder.name!r} {reason}; nothing was unpacked"
            )
        artifact.archive.extract(folder, root, set_attrs=True, numeric_owner=True, **_EXTRACT_KW)
    check_links(root, artifact.path)


def check_links(root: str, src: str) -> None:
    """Every symlink of the unpacked tree resolves inside it (a later link can redirect an earlier one)."""
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path) and not _inside(os.path.realpath(path), root):
                rel = os.path.relpath(path, root)
                raise ReleaseError(
                    f"unsafe archive {src}: {rel!r} resolves outside the release; nothing was unpacked"
                )


def single_top_folder(folder: str) -> str:
    """The folder's only entry when that is a real folder (ansistrano strips it), else the folder."""
    entries = os.listdir(folder)
    if len(entries) == 1:
        only = os.path.join(folder, entries[0])
        if os.path.isdir(only) and not os.path.islink(only):
            return only
    return folder


def unpack_release(layout: Layout, version: str, artifact: Artifact, meta: dict) -> None:
    """Unpack (or copy) into releases/.tmp-<version>-<pid>/, write .release.json, flush, and only then
    rename to releases/<version>: a half-unpacked release never exists under its name."""
    tmp = layout.tmp(version)
    remove_path(tmp)
    os.makedirs(tmp, mode=0o755)
    try:
        content = os.path.join(tmp, "content")
        if artifact.is_dir:
            shutil.copytree(artifact.path, content, symlinks=True)
            top = content
        else:
            os.mkdir(content, 0o755)
            extract_archive(artifact, content)
            if not os.listdir(content):
                raise ReleaseError(f"src {artifact.path} holds nothing to unpack")
            top = single_top_folder(content)
            if top != content:  # links must stay inside the stripped folder too
                check_links(os.path.realpath(top), artifact.path)
        write_json_atomic(os.path.join(top, META_FILE), meta)
        fsync_tree(top)
        os.rename(top, layout.release(version))
        fsync_dir(layout.releases)
    except OSError as exc:
        raise ReleaseError(f"unpacking {version}: {describe_os_error(exc, 'unpacking')}") from exc
    except (tarfile.TarError, EOFError) as exc:
        raise ReleaseError(f"unpacking {version}: src {artifact.path} is damaged: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def switch_current(layout: Layout, version: str) -> None:
    """current.tmp-<pid> -> releases/<version> (relative), renamed over current, folder flushed."""
    tmp = os.path.join(layout.app_root, f"{LINK_TMP_PREFIX}{os.getpid()}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(posixpath.join(RELEASES, version), tmp)
    os.replace(tmp, layout.current)
    fsync_dir(layout.app_root)


def write_state(layout: Layout, state: dict) -> None:
    state["format"] = FORMAT
    state["history"] = state["history"][-HISTORY_KEPT:]
    write_json_atomic(layout.state_file, state)


# --------------------------------------------------------------------------------------------------
# Reconciling the state with the disk
# --------------------------------------------------------------------------------------------------


@dataclass
class Request:
    app_root: str
    state: str = "info"
    version: str | None = None
    src: str | None = None
    checksum: str | None = None
    keep: int = 5
    deployed_by: str | None = None
    reason: str | None = None
    confirm: bool = False
    check_mode: bool = False


@dataclass
class Run:
    """One run: the request, what was found, and what was (or would be) done."""

    req: Request
    layout: Layout
    by: str
    at: str
    snap: Snapshot
    state: dict
    folders: dict[str, dict | None]
    current: str | None  # the release `current` resolves to (None when missing or dangling)
    repairs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    unpacked: str | None = None
    removed: str | None = None
    switched: dict | None = None
    pruned: list[str] = field(default_factory=list)
    artifact: Artifact | None = None
    trash: list[str] = field(default_factory=list)  # releases renamed away, deleted after the state write
    dirty: bool = False  # the state needs writing

    def entry(self, version: str) -> dict | None:
        return next((r for r in self.state["releases"] if r["version"] == version), None)

    def known_sha(self, version: str) -> str | None:
        entry = self.entry(version) or {}
        return entry.get("sha256") or (self.folders.get(version) or {}).get("sha256")

    def do(self, done: str, would: str) -> None:
        self.actions.append(would if self.req.check_mode else done)


def reconcile(run: Run) -> None:
    """Make the state agree with the disk; the symlink is the truth for `current`."""
    snap, state = run.snap, run.state
    _reconcile_releases(run)
    link = snap.link
    if link.exists and not link.is_link:
        raise ReleaseError(f"{run.layout.current} is not a symlink; move it aside to manage releases here")
    if link.valid and state.get("current") != link.version:
        _adopt_link(run, link.version)
    elif link.is_link and link.version and not link.valid:
        run.problems.append(f"current points to releases/{link.version}, which is missing (dangling)")
    elif link.is_link and not link.valid:
        run.problems.append(f"current points to {link.target}, which is not under releases/")
    elif not link.exists and state.get("current"):
        run.problems.append(f"the current symlink is missing (the state says {state['current']})")
    pending = state.pop("pending", None)
    if pending:
        run.repairs.append(f"dropped the unfinished switch to {pending.get('to')} (killed before the switch)")
    if state.get("previous") and state["previous"] not in run.folders:
        run.repairs.append(f"previous release {state['previous']} is gone from releases/")
        state["previous"] = None
    if snap.leftovers:
        names = ", ".join(os.path.basename(p) for p in snap.leftovers)
        run.repairs.append(f"removed leftovers of interrupted runs ({names})")
    run.dirty = bool(run.repairs)


def _reconcile_releases(run: Run) -> None:
    """Drop recorded releases whose folder is gone; record folders this module unpacked but did not
    record (a run killed between the unpack and the state write)."""
    state = run.state
    kept = [r for r in state["releases"] if r["version"] in run.folders]
    for gone in sorted({r["version"] for r in state["releases"]} - {r["version"] for r in kept}):
        run.repairs.append(f"release {gone} is gone from releases/")
    recorded = {r["version"] for r in kept}
    adopted = [
        _record(version, meta)
        for version, meta in run.folders.items()
        if version not in recorded and meta and meta.get("version") == version
    ]
    for entry in sorted(adopted, key=lambda r: (r.get("unpacked_at") or "", r["version"])):
        run.repairs.append(f"recorded release {entry['version']} (unpacked, not recorded)")
        kept.append(entry)
    state["releases"] = kept


def _record(version: str, meta: dict) -> dict:
    return {
        "version": version,
        "sha256": meta.get("sha256"),
        "unpacked_at": meta.get("unpacked_at"),
        "by": meta.get("by"),
    }


def _adopt_link(run: Run, version: str) -> None:
    """The symlink names another release than the state: a run was killed after the switch (pending says
    which), or someone switched it by hand. Record it as the switch it was."""
    state = run.state
    pending = state.pop("pending", None) or {}
    old = state.get("current")
    if pending.get("to") == version:
        previous = pending.get("previous")
        entry = dict(pending["entry"]) if isinstance(pending.get("entry"), dict) else None
        run.repairs.append(f"completed the interrupted {pending.get('action', 'switch')} to {version}")
    else:
        previous = old if old and old != version else state.get("previous")
        entry = {"version": version, "from": old, "at": run.at, "by": run.by, "action": "repair"}
        run.repairs.append(
            f"state said current {old or '(none)'}, the symlink says {version}: recorded {version}"
        )
    state["current"] = version
    state["previous"] = previous if previous and previous != version else None
    if entry:
        state["history"].append(entry)


# --------------------------------------------------------------------------------------------------
# Planning and doing
# --------------------------------------------------------------------------------------------------


def plan_unpack(run: Run, version: str) -> None:
    """Decide whether ``version`` needs unpacking; open (and check) the artifact when it does."""
    req = run.req
    expected = parse_checksum(req.checksum)
    if version in run.folders:
        actual = expected
        if req.src:
            run.artifact = open_artifact(req.src, expected)
            actual = run.artifact.sha256 or expected
        recorded = run.known_sha(version)
        if recorded and actual and recorded != actual:
            raise ReleaseError(
                f"release {version} already exists with sha256 {recorded}, the artifact has {actual}: "
                "refusing to overwrite it (deploy it under a new version, or remove it with state=absent)"
            )
        return
    if not req.src:
        raise ReleaseError(
            f"release {version} is not unpacked under {run.layout.releases} and no src is given"
        )
    run.artifact = open_artifact(req.src, expected)
    run.unpacked = version


def do_unpack(run: Run, version: str) -> None:
    if run.artifact is None:
        raise AssertionError("do_unpack needs the artifact that plan_unpack opened")
    meta = {
        "format": FORMAT,
        "version": version,
        "sha256": run.artifact.sha256,
        "src": run.artifact.path,
        "unpacked_at": run.at,
        "by": run.by,
    }
    if not run.req.check_mode:
        unpack_release(run.layout, version, run.artifact, meta)
    run.folders[version] = meta
    run.state["releases"].append(_record(version, meta))
    run.dirty = True
    run.do(f"unpacked {version}", f"would unpack {version} from {run.artifact.path}")


def do_switch(run: Run, version: str, action: str) -> None:
    """Switch current to ``version``: state with the pending switch, symlink, final state, prune."""
    state, old = run.state, run.current
    previous = old if old and old != version else state.get("previous")
    previous = previous if previous and previous != version and previous in run.folders else None
    entry = {"version": version, "from": old, "at": run.at, "by": run.by, "action": action}
    if run.req.reason:
        entry["reason"] = run.req.reason
    if not run.req.check_mode:
        state["pending"] = {"to": version, "previous": previous, "action": action, "entry": entry}
        write_state(run.layout, state)
        switch_current(run.layout, version)
        state.pop("pending")
    state.update(current=version, previous=previous)
    state["history"].append(entry)
    run.current, run.switched, run.dirty = version, {"from": old, "to": version}, True
    if not run.req.check_mode:
        run.problems = []  # they are all about `current`, which now points to a release
    run.do(
        f"switched from {old or '(none)'} to {version}", f"would switch from {old or '(none)'} to {version}"
    )
    prune(run)


def prune_plan(state: dict, folders: dict[str, dict | None], keep: int) -> list[str]:
    """Recorded releases beyond ``keep`` (counting current and previous, which always stay), oldest first
    by unpack order. keep=0 keeps everything. Folders not recorded in the state are never pruned."""
    if keep <= 0:
        return []
    protected = {state.get("current"), state.get("previous")} - {None}
    others = [
        r["version"] for r in state["releases"] if r["version"] in folders and r["version"] not in protected
    ]
    room = max(0, keep - len(protected))
    return others[: max(0, len(others) - room)]


def prune(run: Run) -> None:
    doomed = prune_plan(run.state, run.folders, run.req.keep)
    for version in doomed:
        _drop(run, version)
    run.pruned = doomed
    if doomed:
        run.do(f"pruned {', '.join(doomed)}", f"would prune {', '.join(doomed)}")


def _drop(run: Run, version: str) -> None:
    """Take a release away: renamed to releases/.tmp-… (gone from its name at once), deleted after the
    state is written (a kill in between leaves a leftover that the next run removes)."""
    if not run.req.check_mode:
        trash = run.layout.tmp(version, ".removing")
        os.rename(run.layout.release(version), trash)
        run.trash.append(trash)
    run.folders.pop(version, None)
    run.state["releases"] = [r for r in run.state["releases"] if r["version"] != version]
    run.dirty = True


def act(run: Run) -> None:
    """The requested state, on top of the reconciled one."""
    req = run.req
    if req.state in ("present", "current"):
        version = check_version(req.version)
        plan_unpack(run, version)
        if run.unpacked:
            do_unpack(run, version)
        if req.state == "current" and run.current != version:
            do_switch(run, version, "deploy")
    elif req.state == "rollback":
        target = rollback_target(run)
        if target != run.current:
            do_switch(run, target, "rollback")
        else:
            run.actions.append(f"{target} is already current")
    elif req.state == "absent":
        remove(run, check_version(req.version))


def rollback_target(run: Run) -> str:
    if run.req.version:
        target = check_version(run.req.version)
    else:
        target = run.state.get("previous")
        if not target:
            raise ReleaseError(
                f"no previous release recorded under {run.layout.app_root}; name one with version"
            )
    if target not in run.folders:
        raise ReleaseError(f"cannot roll back to {target}: {run.layout.release(target)} is not on the host")
    return target


def remove(run: Run, version: str) -> None:
    if version not in run.folders:
        run.actions.append(f"{version} is not on the host")
        return
    if version in (run.current, run.snap.link.version, run.state.get("current")):
        raise ReleaseError(f"refusing to remove {version}: it is the current release")
    if version == run.state.get("previous"):
        raise ReleaseError(f"refusing to remove {version}: it is the previous release (the rollback target)")
    if not run.req.confirm:
        raise ReleaseError(f"state=absent deletes release {version}: set confirm: true (nothing was changed)")
    _drop(run, version)
    run.removed = version
    run.do(f"removed {version}", f"would remove {version}")


# --------------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------------


def validate(req: Request) -> None:
    if req.state not in STATES:
        raise ReleaseError(f"bad state {req.state!r}: one of {', '.join(STATES)}")
    if not req.app_root or not os.path.isabs(req.app_root):
        raise ReleaseError(f"app_root must be an absolute path, not {req.app_root!r}")
    if req.state in ("present", "current", "absent") or (req.version and req.state == "rollback"):
        check_version(req.version)
    if req.keep < 0:
        raise ReleaseError(f"keep must not be negative (0 keeps every release), not {req.keep}")
    parse_checksum(req.checksum)


def release(req: Request) -> dict:
    """Run one request under the app root's lock and return the module result."""
    validate(req)
    layout = Layout(os.path.normpath(req.app_root))
    writes = not req.check_mode and req.state != "info"
    try:
        if writes and req.state in ("present", "current"):
            os.makedirs(layout.releases, exist_ok=True)
        with locked(layout, exclusive=writes):
            return _release(req, layout, writes)
    except OSError as exc:
        raise ReleaseError(f"{layout.app_root}: {describe_os_error(exc, 'managing releases')}") from exc


def _release(req: Request, layout: Layout, writes: bool) -> dict:
    snap = inspect(layout)
    run = Run(
        req=req,
        layout=layout,
        by=req.deployed_by or default_user(),
        at=utcnow_iso(),
        snap=snap,
        state=copy.deepcopy(snap.state),
        folders=dict(snap.folders),
        current=snap.link.version if snap.link.valid else None,
    )
    try:
        reconcile(run)
        if writes:
            for path in snap.leftovers:  # under the lock: nobody is using them
                remove_path(path)
        act(run)
        if writes and run.dirty:
            write_state(layout, run.state)
    finally:
        if run.artifact is not None:
            run.artifact.close()
        for path in run.trash:
            shutil.rmtree(path, ignore_errors=True)
    return result(run)


def differences(run: Run) -> DifferenceTracker:
    """`current`, `previous` and the releases on disk before the run and after it (or, in check mode, as
    they would be): the run's `diff`."""
    snap, tracker = run.snap, DifferenceTracker()
    link_before = snap.link.shown()
    tracker.add("current", link_before, run.current if run.switched else link_before)
    tracker.add("previous", snap.state.get("previous"), run.state.get("previous"))
    tracker.add("releases", sorted(snap.folders), sorted(run.folders))
    return tracker


def result(run: Run) -> dict:
    state = run.state
    repaired = bool(run.repairs) and run.req.state != "info"
    changed = bool(run.unpacked or run.switched or run.pruned or run.removed or repaired)
    msgs = list(run.actions)
    if run.repairs:
        how = {"info": "needs repair", "check": "would repair"}.get(
            "info" if run.req.state == "info" else "check" if run.req.check_mode else "", "repaired"
        )
        msgs.append(f"{how}: " + "; ".join(run.repairs))
    msgs += run.problems
    if not run.actions:
        count = len(run.folders)
        msgs.insert(
            0,
            f"current {run.current or '(none)'}, previous {state.get('previous') or '(none)'}, "
            f"{count} release{'' if count == 1 else 's'}",
        )
    return {
        "changed": changed,
        "current": run.current,
        "previous": state.get("previous"),
        "releases": listing(run),
        "history": state["history"][-HISTORY_SHOWN:],
        "switched": run.switched,
        "unpacked": run.unpacked,
        "removed": run.removed,
        "pruned": run.pruned,
        "repaired": repaired,
        "problems": run.problems,
        "msg": "; ".join(msgs),
        "diff": differences(run).diff(),
    }


def listing(run: Run) -> list[dict]:
    recorded = [r for r in run.state["releases"] if r["version"] in run.folders]
    others = [
        {"version": v, "sha256": None, "unpacked_at": None, "by": None}
        for v in sorted(run.folders)
        if v not in {r["version"] for r in recorded}
    ]
    return [
        {
            "version": r["version"],
            "path": run.layout.release(r["version"]),
            "current": r["version"] == run.current,
            "previous": r["version"] == run.state.get("previous"),
            "unpacked_at": r.get("unpacked_at"),
            "sha256": r.get("sha256"),
            "recorded": r in recorded,
        }
        for r in recorded + others
    ]
