# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a set (sources -> a complete folder with its manifest), reading and listing sets."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sqlite3
import sys
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._files import (
    atomic_write,
    describe_os_error,
    fsync_dir,
    sha256_file,
    write_new_private,
)
from ansible_collections.aitbc.ops.plugins.module_utils._text import human_bytes, iso, parse_iso, utcnow
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import (
    COLLECTION_VERSION,
    FORMAT,
    MANIFEST,
    PARTIAL_PREFIX,
    SET_NAME_RE,
    SUMS,
    TIME_FORMAT,
    BackupError,
    Entry,
    Manifest,
    Row,
    Source,
    is_plain_file_name,
)
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.base import owner_of
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.registry import KINDS, kind_of

# --------------------------------------------------------------------------------------------------
# Writing a set
# --------------------------------------------------------------------------------------------------


def host_dir(root: str, host: str) -> str:
    if not host or "/" in host or host in (".", ".."):
        raise BackupError(f"bad host name for a backup folder: {host!r}")
    return os.path.join(root, host)


def _new_set_name(folder: str, now: datetime.datetime) -> str:
    base = now.strftime(TIME_FORMAT)
    name, counter = base, 1
    while os.path.exists(os.path.join(folder, name)):
        counter += 1
        name = f"{base}-{counter}"
    return name


def normalize_sources(sources: list[Source] | None) -> list[Source]:
    """Validate source dicts; drop a path listed twice (two services may name the same database)."""
    if not sources:
        raise BackupError("no backup sources given")
    seen, out, names = set(), [], set()
    for index, source in enumerate(sources, 1):
        if not isinstance(source, dict) or not source.get("kind"):
            raise BackupError(f"backup source {index}: kind is required ({', '.join(sorted(KINDS))})")
        kind = kind_of(source["kind"])
        if kind.name != "redis" and not source.get("path"):
            raise BackupError(f"backup source {index} ({kind.name}): path is required")
        ident = (kind.name, source.get("path") or f"{source.get('host')}:{source.get('port')}")
        if ident in seen:
            continue
        seen.add(ident)
        name = kind.file_name(source)
        if name in names:
            raise BackupError(f"backup source {index}: two sources would both be stored as {name}")
        names.add(name)
        out.append(source)
    return out


def plan_backup(sources: list[Source] | None) -> list[Entry]:
    """What a backup would copy (check mode): one dict per source; raises for a missing source."""
    plan = []
    for source in normalize_sources(sources):
        kind = kind_of(source["kind"])
        kind.check_source(source)
        size = None
        if source.get("path") and os.path.isfile(source["path"]):
            size = os.path.getsize(source["path"])
        plan.append(
            {
                "kind": kind.name,
                "service": source.get("service"),
                "source": source.get("path"),
                "file": kind.file_name(source),
                "size": size,
            }
        )
    return plan


def backup_result(params: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    """The aitbc.ops.backup module's result: the set's manifest (in check mode, the plan) and a one-line
    ``msg``; raises BackupError."""
    if check_mode:
        plan = plan_backup(params["sources"])
        return {
            "changed": True,
            "backup": {"set": None, "path": None, "files": plan, "bytes": 0},
            "msg": f"would back up {len(plan)} source(s) (check mode)",
        }
    manifest = create_set(
        params["root"],
        params["host"],
        params["sources"],
        key=params.get("encryption_key"),
        label=params.get("label") or "",
        keep=bool(params.get("keep")),
    )
    manifest["plaintext_sensitive"] = [
        f["file"] for f in manifest["files"] if f.get("sensitive") and not f.get("encrypted")
    ]
    notes = []
    if manifest["label"]:
        notes.append(f"label {manifest['label']}")
    if manifest["keep"]:
        notes.append("kept: retention never deletes it")
    if manifest["plaintext_sensitive"]:
        notes.append(f"{len(manifest['plaintext_sensitive'])} sensitive file(s) not encrypted")
    msg = (
        f"backup set {manifest['set']} written to {manifest['path']}: {len(manifest['files'])} file(s), "
        f"{human_bytes(manifest['bytes'])}" + (f" ({'; '.join(notes)})" if notes else "")
    )
    return {"changed": True, "backup": manifest, "msg": msg}


def _back_up_source(source: Source, partial: str, key: str | None) -> Entry:
    """Copy one source into the partial set folder; its manifest entry."""
    kind = kind_of(source["kind"])
    entry: Entry = {
        "kind": kind.name,
        "service": source.get("service") or "",
        "source": source.get("path", ""),
    }
    doing = f"backing up {entry['source'] or kind.name}"
    try:
        entry.update(kind.backup(source, partial, key))
    except OSError as exc:
        raise BackupError(describe_os_error(exc, doing)) from exc
    if entry["source"] and os.path.exists(entry["source"]):
        entry["owner"] = owner_of(entry["source"])
    path = os.path.join(partial, entry["file"])
    entry["size"] = os.path.getsize(path)
    entry["sha256"] = sha256_file(path)
    entry["sensitive"] = bool(kind.sensitive or source.get("sensitive"))
    entry.setdefault("encrypted", False)
    return entry


def create_set(
    root: str,
    host: str,
    sources: list[Source] | None,
    key: str | None = None,
    label: str = "",
    tool_version: str = COLLECTION_VERSION,
    now: datetime.datetime | None = None,
    keep: bool = False,
) -> Manifest:
    """Back up every source into a new set; returns its manifest. On any error the partial folder is
    removed, no set appears, and the sources are untouched (they are only read). A set with ``keep`` is
    never deleted by retention (backup/retention.py)."""
    sources = normalize_sources(sources)
    folder = host_dir(root, host)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(root, os.stat(root).st_mode & 0o7777 & ~0o077 | 0o700)
        os.chmod(folder, 0o700)
    except OSError as exc:
        raise BackupError(f"backup root {root}: {describe_os_error(exc, 'creating it')}") from exc
    started = now or utcnow()
    name = _new_set_name(folder, started)
    partial = os.path.join(folder, f"{PARTIAL_PREFIX}{name}-{os.getpid()}")
    try:
        os.mkdir(partial, 0o700)
        entries = [_back_up_source(source, partial, key) for source in sources]
        manifest = {
            "format": FORMAT,
            "set": name,
            "host": host,
            "label": label or "",
            "keep": bool(keep),
            "created": iso(started),
            "completed": iso(utcnow()),
            "tools": {
                "aitbc_ops": tool_version,
                "python": sys.version.split()[0],
                "sqlite": sqlite3.sqlite_version,
            },
            "bytes": sum(e["size"] for e in entries),
            "files": entries,
            "verification": None,
        }
        sums = "".join(f"{e['sha256']}  {e['file']}\n" for e in entries)
        write_new_private(os.path.join(partial, SUMS), sums.encode())
        write_new_private(
            os.path.join(partial, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True).encode()
        )
        fsync_dir(partial)
        os.rename(partial, os.path.join(folder, name))
        fsync_dir(folder)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise BackupError(
            f"backup failed, no set written: {describe_os_error(exc, 'writing the set')}"
        ) from exc
    except BackupError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise BackupError(f"backup failed, no set written: {exc}") from exc
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    manifest["path"] = os.path.join(folder, name)
    return manifest


# --------------------------------------------------------------------------------------------------
# Reading sets
# --------------------------------------------------------------------------------------------------


def read_manifest(set_path: str) -> Manifest:
    path = os.path.join(set_path, MANIFEST)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        raise BackupError(f"{set_path}: no {MANIFEST}: not a complete backup set") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise BackupError(f"{path}: manifest lacks its file list")
    for entry in manifest["files"]:
        name = entry.get("file") if isinstance(entry, dict) else None
        if not is_plain_file_name(name):
            raise BackupError(f"{path}: refusing a file entry that is not a plain file name: {name!r:.80}")
    return manifest


def write_manifest(set_path: str, manifest: Manifest) -> None:
    data = {k: v for k, v in manifest.items() if k != "path"}
    atomic_write(os.path.join(set_path, MANIFEST), json.dumps(data, indent=2, sort_keys=True).encode(), 0o600)


def set_summary(set_path: str, now: datetime.datetime | None = None) -> Row:
    """One row of a listing: a complete set (with its manifest) or a broken/partial one."""
    now = now or utcnow()
    name = os.path.basename(set_path)
    row: Row = {
        "set": name,
        "path": set_path,
        "complete": False,
        "verified": None,
        "verified_at": None,
        "label": "",
        "keep": False,
        "created": None,
        "age_s": None,
        "bytes": 0,
        "files": 0,
        "error": None,
    }
    try:
        manifest = read_manifest(set_path)
    except BackupError as exc:
        row["error"] = str(exc)
        row["bytes"] = sum(
            os.path.getsize(os.path.join(set_path, f))
            for f in os.listdir(set_path)
            if os.path.isfile(os.path.join(set_path, f))
        )
        return row
    created = parse_iso(manifest.get("created") or iso(now))
    verification = manifest.get("verification") or {}
    row.update(
        complete=True,
        label=manifest.get("label") or "",
        keep=manifest.get("keep") is True,
        created=iso(created),
        age_s=int((now - created).total_seconds()),
        bytes=int(manifest.get("bytes") or 0),
        files=len(manifest["files"]),
        services=sorted({f.get("service") or "" for f in manifest["files"]} - {""}),
        encrypted=[f["file"] for f in manifest["files"] if f.get("encrypted")],
        plaintext_sensitive=[
            f["file"] for f in manifest["files"] if f.get("sensitive") and not f.get("encrypted")
        ],
        verified=verification.get("ok") if verification else None,
        verified_at=verification.get("at") if verification else None,
    )
    return row


def list_sets(root: str, host: str, now: datetime.datetime | None = None) -> tuple[list[Row], list[Row]]:
    """Complete sets of a host, oldest first, and leftovers (partial or manifest-less folders)."""
    folder = host_dir(root, host)
    if not os.path.isdir(folder):
        return [], []
    sets, leftovers = [], []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not os.path.isdir(path):
            continue
        row = set_summary(path, now)
        if row["complete"] and SET_NAME_RE.match(name):
            sets.append(row)
        elif name.startswith(PARTIAL_PREFIX) or SET_NAME_RE.match(name):
            row["error"] = row["error"] or "incomplete set"
            row["mtime"] = os.path.getmtime(path)
            leftovers.append(row)
    sets.sort(key=lambda r: (r["created"] or "", r["set"]))
    return sets, leftovers


def newest(sets: list[Row], verified: bool = False) -> Row | None:
    chosen = [s for s in sets if s["verified"]] if verified else sets
    return chosen[-1] if chosen else None


def resolve_set(root: str | None, host: str | None, ref: str | None) -> str:
    """A set path from a name, a path, or `newest`/`latest`."""
    if not ref or ref in ("newest", "latest"):
        sets, _leftovers = list_sets(root, host)
        if not sets:
            raise BackupError(f"no backup set for {host} under {host_dir(root, host)}")
        return sets[-1]["path"]
    if os.path.isabs(ref):
        path = ref
    else:
        if not SET_NAME_RE.match(ref):
            raise BackupError(f"bad backup set name {ref!r}: expected YYYYMMDDTHHMMSSZ, a path, or newest")
        path = os.path.join(host_dir(root, host), ref)
    if not os.path.isdir(path):
        raise BackupError(f"backup set not found: {path}")
    return path
