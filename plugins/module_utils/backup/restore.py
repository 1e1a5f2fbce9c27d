# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore: choose entries of a set, put them back at their source paths, and say what changes."""

from __future__ import annotations

import os
import stat
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.aitbc.ops.plugins.module_utils._files import describe_os_error, sha256_file
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import BackupError, Entry, Manifest
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.registry import kind_of
from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import read_manifest
from ansible_collections.aitbc.ops.plugins.module_utils.backup.verify import verify_checksums


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


def restore_plan(set_path: str, items: list[str] | None) -> tuple[Manifest, list[dict[str, str]]]:
    manifest = read_manifest(set_path)
    return manifest, [
        {"file": e["file"], "kind": e["kind"], "service": e.get("service", ""), "target": e["source"]}
        for e in select_entries(manifest, items)
    ]


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


def restore_diff(set_path: str, items: list[str] | None, key: str | None = None) -> DifferenceTracker:
    """Check mode's diff: each target as it is and as the restore would leave it (keyed by path)."""
    manifest = read_manifest(set_path)
    tracker = DifferenceTracker()
    for entry in select_entries(manifest, items):
        try:
            after = kind_of(entry["kind"]).restored_state(entry, os.path.join(set_path, entry["file"]), key)
        except BackupError:  # unreadable without the key: name the copy it would come from
            after = {"exists": True, "from": entry["file"]}
        tracker.add(entry["source"], target_state(entry["source"]), after)
    return tracker


def restore_set(
    set_path: str, items: list[str] | None, key: str | None = None, tracker: DifferenceTracker | None = None
) -> tuple[Manifest, list[dict[str, str]]]:
    """Put the selected files of a set back at their source paths, each atomically (write, then
    rename). The copies are checked against the manifest first: a corrupted set restores nothing.
    With a ``tracker``, records each target before and after (as found on disk once restored)."""
    manifest, plan = restore_plan(set_path, items)
    chosen = {p["file"] for p in plan}
    bad = [c for c in verify_checksums(set_path, manifest) if c["file"] in chosen and not c["ok"]]
    if bad:
        raise BackupError(f"refusing to restore from {set_path}: {bad[0]['file']}: {bad[0]['detail']}")
    for entry in manifest["files"]:
        if entry["file"] not in chosen:
            continue
        target = entry["source"]
        if tracker is not None:
            tracker.add(target, target_state(target))
        try:
            kind_of(entry["kind"]).restore(entry, os.path.join(set_path, entry["file"]), target, key)
        except OSError as exc:
            raise BackupError(f"restoring {target}: {describe_os_error(exc, 'writing it')}") from exc
        if tracker is not None:
            tracker.update_after(target, target_state(target))
    return manifest, plan
