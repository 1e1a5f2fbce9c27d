# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one registry of source kinds: kind name -> SourceKind."""

from __future__ import annotations

from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import BackupError
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.base import SourceKind
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.files import FilesKind
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.redis import RedisKind
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.sqlite import SqliteKind

KINDS: dict[str, SourceKind] = {kind.name: kind() for kind in (SqliteKind, FilesKind, RedisKind)}


def kind_of(name: str) -> SourceKind:
    if name not in KINDS:
        raise BackupError(f"unknown backup kind {name!r} (known: {', '.join(sorted(KINDS))})")
    return KINDS[name]
