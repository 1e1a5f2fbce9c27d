# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore: choose entries of a set, put them back at their source paths (or under a side folder), and
say what changes."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.aitbc.ops.plugins.module_utils._files import describe_os_error, sha256_file
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import BackupError, Entry, Manifest
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.registry import kind_of
from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import read_manifest
from ansible_collections.aitbc.ops.plugins.module_utils.backup.verify import verify_checksums

# One row of a plan: file (in the set), kind, service, source (where it was taken), target (where it goes).
PlanItem = dict[str, str]


@dataclass
class RestoreResult:
    manifest: Manifest
    plan: list[PlanItem]
    set_aside: list[str] = field(default_factory=list)  # stale files moved beside their target, kept


def select_entries(manifest: Manifest, items: list[str] | None) -> list[Entry]:
    """Entries to restore: all, or those whose file name, service, or source path is in ``items``."""
    if not items:
        return list(manifest["files"])
    chosen = [
        e
        for e in manifest["files"]
        if e["file"] in items or e.get("service") in items or e.get("source") in items
    ]
    missing = [
        i for i in items if not any(i in (e["file"], e.get("service"), e.get("source")) for e in chosen)
    ]
    if missing:
        raise BackupError(f"not in set {manifest.get('set')}: {', '.join(missing)}")
    return chosen


# --------------------------------------------------------------------------------------------------
# A side restore: each item under DEST at its path relative to / (DEST/var/lib/x/chain.db), so two
# sources with one file name stay apart and the layout reads like the live one.
# --------------------------------------------------------------------------------------------------


def side_path(dest: str, source: str) -> str:
    """Where ``source`` goes in a side restore into ``dest``: its absolute path, re-rooted under dest."""
    relative = os.path.normpath("/" + source).lstrip("/")  # normpath of an absolute path drops any ..
    if not relative or relative == ".":
        raise BackupError(f"cannot restore {source!r} into a side folder: not a file or folder path")
    return os.path.join(dest, relative)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def check_side_dest(dest: str, sources: list[str]) -> None:
    """Refuse a side folder that is, holds, or lies inside a live target: writing there is not a side
    restore. Paths compare after resolving symlinks."""
    if not os.path.isabs(dest):
        raise BackupError(f"dest must be an absolute path: {dest!r}")
    real = os.path.realpath(dest)
    for source in sources:
        live = os.path.realpath(source)
        if _within(live, real) or _within(real, live):
            raise BackupError(
                f"dest {dest} {'is or holds' if _within(live, real) else 'lies inside'} the live target "
                f"{source}: a side restore must not touch live data; choose a folder elsewhere"
            )
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise BackupError(f"dest {dest} exists and is not a folder")


def restore_plan(
    set_path: str, items: list[str] | None, dest: str | None = None
) -> tuple[Manifest, list[PlanItem]]:
    """The entries chosen and where each goes: its source path, or its side path under ``dest``."""
    manifest = read_manifest(set_path)
    entries = select_entries(manifest, items)
    if dest:
        check_side_dest(dest, [e["source"] for e in entries])
    return manifest, [
        {
            "file": e["file"],
            "kind": e["kind"],
            "service": e.get("service", ""),
            "source": e["source"],
            "target": side_path(dest, e["source"]) if dest else e["source"],
        }
        for e in entries
    ]


def existing_targets(plan: list[PlanItem]) -> list[str]:
    """Targets that exist now (a side restore replaces them only when confirmed)."""
    return [p["target"] for p in plan if os.path.lexists(p["target"])]


def target_state(path: str) -> dict[str, Any]:
    """What a restore target holds now, as the diff shows it: a file by size and sha256, a folder by
    the count and bytes of its regular files."""
    if not os.path.lexists(path):
        return {"exists": False}
    if os.path.isfile(path):
        return {"exists": True, "type": "file", "size": os.path.getsize(path), "sha256": sha256_file(path)}
    if not os.path.isdir(path):
        return {"exists": True, "type": "other"}
    files = total = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(folder, name))
            if stat.S_ISREG(st.st_mode):
                files += 1
                total += st.st_size
    return {"exists": True, "type": "folder", "files": files, "bytes": total}


def _entries_by_file(manifest: Manifest) -> dict[str, Entry]:
    return {e["file"]: e for e in manifest["files"]}


def restore_diff(
    set_path: str, items: list[str] | None, key: str | None = None, dest: str | None = None
) -> DifferenceTracker:
    """Check mode's diff: each target as it is and as the restore would leave it (keyed by path)."""
    manifest, plan = restore_plan(set_path, items, dest)
    entries = _entries_by_file(manifest)
    tracker = DifferenceTracker()
    for item in plan:
        entry = entries[item["file"]]
        try:
            after = kind_of(entry["kind"]).restored_state(entry, os.path.join(set_path, entry["file"]), key)
        except BackupError:  # unreadable without the key: name the copy it would come from
            after = {"exists": True, "from": entry["file"]}
        tracker.add(item["target"], target_state(item["target"]), after)
    return tracker


def restore_set(
    set_path: str,
    items: list[str] | None,
    key: str | None = None,
    tracker: DifferenceTracker | None = None,
    dest: str | None = None,
) -> RestoreResult:
    """Put the selected files of a set back at their source paths (or under ``dest``), each atomically
    (write, then rename). The copies are checked against the manifest first: a corrupted set restores
    nothing. With a ``tracker``, records each target before and after (as found on disk once restored)."""
    manifest, plan = restore_plan(set_path, items, dest)
    chosen = {p["file"] for p in plan}
    bad = [c for c in verify_checksums(set_path, manifest) if c["file"] in chosen and not c["ok"]]
    if bad:
        raise BackupError(f"refusing to restore from {set_path}: {bad[0]['file']}: {bad[0]['detail']}")
    if dest and not os.path.isdir(dest):
        try:  # private: a side restore may hold decrypted key material
            os.makedirs(dest, mode=0o700)
        except OSError as exc:
            raise BackupError(f"dest {dest}: {describe_os_error(exc, 'creating it')}") from exc
    entries = _entries_by_file(manifest)
    result = RestoreResult(manifest, plan)
    for item in plan:
        entry, target = entries[item["file"]], item["target"]
        if tracker is not None:
            tracker.add(target, target_state(target))
        try:
            found = kind_of(entry["kind"]).restore(entry, os.path.join(set_path, entry["file"]), target, key)
        except OSError as exc:
            raise BackupError(f"restoring {target}: {describe_os_error(exc, 'writing it')}") from exc
        result.set_aside += found
        if tracker is not None:
            tracker.update_after(target, target_state(target))
    return result
