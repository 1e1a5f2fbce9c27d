# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLite databases: the online backup API in, an atomic replace (stale -wal/-shm set aside) out."""

from __future__ import annotations

import errno
import os
import sqlite3
import time

from ansible_collections.aitbc.ops.plugins.module_utils._files import fsync_dir, fsync_file
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import (
    RESTORE_ASIDE,
    SQLITE_SIDECARS,
    TIME_FORMAT,
    BackupError,
    Entry,
    Source,
)
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.base import (
    Finding,
    SourceKind,
    stage_copy,
)


def _sqlite_readonly(path: str) -> sqlite3.Connection:
    # immutable: no locks and no -wal/-shm files next to a copy that nothing else writes.
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)


def sqlite_integrity(path: str) -> Finding:
    """PRAGMA integrity_check of a database file: (ok, detail)."""
    try:
        conn = _sqlite_readonly(path)
        try:
            rows = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return False, f"not a usable SQLite database: {exc}"
    if rows == ["ok"]:
        return True, "integrity_check ok"
    return False, "integrity_check: " + "; ".join(rows[:3])


def aside_folder(target: str, now: float | None = None) -> str:
    """A new folder ``<target>.aitbc-restore-aside/<UTC timestamp>[-N]/`` (0700) beside ``target``: the
    same filesystem, so moving a file into it is a rename."""
    base = target + RESTORE_ASIDE
    os.makedirs(base, mode=0o700, exist_ok=True)
    name = time.strftime(TIME_FORMAT, time.gmtime(now))
    folder, counter = os.path.join(base, name), 1
    while True:
        try:
            os.mkdir(folder, 0o700)
            return folder
        except FileExistsError:
            counter += 1
            folder = os.path.join(base, f"{name}-{counter}")


def set_aside(paths: list[str], target: str) -> list[str]:
    """Move ``paths`` (files beside ``target``) into a new aside folder; their new paths."""
    folder = aside_folder(target)
    moved = []
    for path in paths:
        dest = os.path.join(folder, os.path.basename(path))
        os.replace(path, dest)
        moved.append(dest)
    fsync_dir(folder)
    fsync_dir(os.path.dirname(target))
    return moved


class SqliteKind(SourceKind):
    """A SQLite database, copied with the online backup API: one read transaction, so the copy is the
    state of one commit even while writers go on (WAL or rollback journal)."""

    name = "sqlite"

    def backup(self, source: Source, folder: str, key: str | None) -> Entry:
        path = source["path"]
        if not os.path.isfile(path):
            raise BackupError(f"sqlite source not found: {path}")
        target = os.path.join(folder, self.file_name(source))
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            journal = src.execute("PRAGMA journal_mode").fetchone()[0]
            dst = sqlite3.connect(target)
            try:
                # The copy needs no journal of its own: a failed copy is thrown away whole.
                dst.execute("PRAGMA journal_mode=OFF")
                dst.execute("PRAGMA synchronous=OFF")
                src.backup(dst, pages=-1)
                pages = dst.execute("PRAGMA page_count").fetchone()[0]
                page_size = dst.execute("PRAGMA page_size").fetchone()[0]
            finally:
                dst.close()
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", None) == 13 or "disk is full" in str(exc):  # SQLITE_FULL
                raise OSError(errno.ENOSPC, "database or disk is full", target) from exc
            raise BackupError(f"cannot back up {path}: {exc}") from exc
        finally:
            src.close()
        os.chmod(target, 0o600)
        fsync_file(target)
        return {
            "file": os.path.basename(target),
            "sqlite": {"journal_mode": journal, "page_count": pages, "page_size": page_size},
        }

    def integrity(self, entry: Entry, path: str) -> Finding | None:
        return sqlite_integrity(path)

    def restore(self, entry: Entry, src: str, target: str, key: str | None) -> list[str]:
        """Replace ``target`` with the copy. A stale -wal (or -shm, -journal) beside it would be replayed
        into the restored database, so it is moved into ``<target>.aitbc-restore-aside/<UTC time>/`` first
        (kept, not deleted: it may hold the last commits); returns the paths it was moved to."""
        tmp = stage_copy(src, target, entry)
        stale = [target + suffix for suffix in SQLITE_SIDECARS if os.path.lexists(target + suffix)]
        aside = set_aside(stale, target) if stale else []
        os.replace(tmp, target)
        fsync_dir(os.path.dirname(target))
        return aside

    def drill(self, entry: Entry, restored: str, query: str | None) -> str:
        conn = sqlite3.connect(restored)
        try:
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if not query:
                return f"opened, {tables} table(s)"
            try:
                row = conn.execute(query).fetchone()
            except sqlite3.DatabaseError as exc:
                raise BackupError(f"drill query failed ({query}): {exc}") from exc
            if row is None:
                raise BackupError(f"drill query returned no row ({query})")
            value = row[0] if len(row) == 1 else list(row)
            return f"{query} -> {value}"
        finally:
            conn.close()
