# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The set format and the one error of the backup package."""

from __future__ import annotations

import re
from typing import Any

FORMAT = 1
# The collection's version, recorded in each manifest (tools.aitbc_ops). Modules cannot read galaxy.yml on
# a managed host, so it is a constant here; tests/unit/plugins/module_utils/test_backup_units.py keeps it
# equal to galaxy.yml's version.
COLLECTION_VERSION = "0.3.0"
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
PARTIAL_PREFIX = ".partial-"
SET_NAME_RE = re.compile(r"^\d{8}T\d{6}Z(?:-\d+)?$")
TIME_FORMAT = "%Y%m%dT%H%M%SZ"
# Encrypted archives are built in memory (about 10x their size at peak), so no plaintext copy of key
# material ever touches the disk. Key stores are small; larger folders belong in an unencrypted source.
MAX_ENCRYPTED_ARCHIVE = 64 * 1024 * 1024
RESTORE_TMP = ".aitbc-restore.tmp"
RESTORE_OLD = ".aitbc-restore-old"
# Stale SQLite sidecars of a restored database are kept in <target>.aitbc-restore-aside/<UTC timestamp>/.
RESTORE_ASIDE = ".aitbc-restore-aside"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def is_set_name(name: Any) -> bool:
    """A backup set's folder name (a UTC timestamp): what the controller accepts from a host as a path."""
    return isinstance(name, str) and bool(SET_NAME_RE.match(name))


def is_plain_file_name(name: Any) -> bool:
    """One path component a set may hold: never empty, ``.``/``..``, a path, or a hidden name. A manifest or
    a host returns it, so the controller checks it before it becomes part of a path."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not name.startswith(".")
        and not any(c in name for c in "/\\\0")
        and len(name) <= 255
    )


# A manifest, one of its file entries, a source given by the user, a listing row: JSON-shaped dicts.
Manifest = dict[str, Any]
Entry = dict[str, Any]
Source = dict[str, Any]
Row = dict[str, Any]


class BackupError(Exception):
    """A backup, verification or restore that cannot go on. The message is one line for the user."""
