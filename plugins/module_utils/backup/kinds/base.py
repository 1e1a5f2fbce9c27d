# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The interface every source kind implements, the file owner facts they share, and the staged copy
that a restore of a single file replaces its target with."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import (
    RESTORE_TMP,
    BackupError,
    Entry,
    Source,
)

# (ok, detail) of a check on a copy.
Finding = tuple[bool, str]


class SourceKind:
    """One kind of thing to back up. Subclasses set ``name`` and implement the three operations.

    ``backup(source, folder, key)`` writes one file into ``folder`` and returns its manifest entry
    (name, kind, source, extra facts); ``restore(entry, src, target, key)`` puts the data of ``src``
    (a file of a set) at ``target`` atomically and returns the paths of what it set aside;
    ``drill(entry, restored, query)`` proves a restored copy usable and returns a short detail (raises
    BackupError when it is not).
    """

    name = ""
    sensitive = False  # holds key material: must be encrypted before it leaves the host

    def file_name(self, source: Source) -> str:
        base = os.path.basename(source["path"].rstrip("/")) or self.name
        service = source.get("service") or "host"
        return f"{service}.{base}"

    def check_source(self, source: Source) -> None:
        if not os.path.exists(source["path"]):
            raise BackupError(f"{self.name} source not found: {source['path']}")

    def backup(self, source: Source, folder: str, key: str | None) -> Entry:
        raise NotImplementedError

    def restore(self, entry: Entry, src: str, target: str, key: str | None) -> list[str]:
        raise NotImplementedError

    def drill(self, entry: Entry, restored: str, query: str | None) -> str:
        raise NotImplementedError

    def integrity(self, entry: Entry, path: str) -> Finding | None:
        """A check of the copy in the set itself, besides its checksum (None when there is none)."""
        return None

    def restored_state(self, entry: Entry, src: str, key: str | None) -> dict[str, Any]:
        """What the target will hold after a restore (the shape of restore.target_state): by default
        the copy itself, as the manifest records it."""
        return {"exists": True, "type": "file", "size": entry.get("size"), "sha256": entry.get("sha256")}


def owner_of(path: str) -> dict[str, Any]:
    st = os.stat(path)
    return {"mode": oct(st.st_mode & 0o7777), "uid": st.st_uid, "gid": st.st_gid}


def apply_owner(fd: int, entry: Entry) -> None:
    """The recorded mode and owner, set on an open file: never through a path a link could redirect."""
    owner = entry.get("owner") or {}
    if "mode" in owner:
        os.fchmod(fd, int(owner["mode"], 8))
    if os.geteuid() == 0 and "uid" in owner:
        os.fchown(fd, owner["uid"], owner["gid"])


def stage_copy(src: str, target: str, entry: Entry) -> str:
    """Copy ``src`` to a new temp file beside ``target`` (same filesystem, so ``os.replace`` is atomic),
    with the owner and mode the manifest recorded, synced to disk; returns the temp file's path.

    The folder may belong to the service's account, which could plant a link under a fixed name: the temp
    file has a random name and is created exclusively, not following links (mkstemp: O_EXCL, O_NOFOLLOW),
    and its mode and owner are set through its descriptor."""
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(target) + RESTORE_TMP + "-")
    try:
        with open(src, "rb") as source, os.fdopen(os.dup(fd), "wb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
            out.flush()
        apply_owner(fd, entry)
        os.fsync(fd)
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    return tmp
