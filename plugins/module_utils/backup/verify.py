# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verification of a set: checksums, the integrity of each copy, and a restore drill."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Collection
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._files import describe_os_error, sha256_file
from ansible_collections.aitbc.ops.plugins.module_utils._text import iso, utcnow
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import BackupError, Entry, Manifest
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.registry import kind_of
from ansible_collections.aitbc.ops.plugins.module_utils.backup.sets import read_manifest, write_manifest

Check = dict[str, Any]


def _check(entry: Entry, check: str, ok: bool, detail: str) -> Check:
    return {
        "file": entry.get("file", "-"),
        "service": entry.get("service", ""),
        "check": check,
        "ok": bool(ok),
        "detail": detail,
    }


def verify_checksums(set_path: str, manifest: Manifest) -> list[Check]:
    checks = []
    for entry in manifest["files"]:
        path = os.path.join(set_path, entry["file"])
        if not os.path.isfile(path):
            checks.append(_check(entry, "sha256", False, "file missing from the set"))
            continue
        size = os.path.getsize(path)
        if size != entry.get("size"):
            checks.append(
                _check(entry, "sha256", False, f"size {size} bytes, manifest says {entry.get('size')}")
            )
            continue
        actual = sha256_file(path)
        if actual != entry.get("sha256"):
            checks.append(
                _check(
                    entry,
                    "sha256",
                    False,
                    f"sha256 mismatch (manifest {entry.get('sha256', '')[:12]}…, file {actual[:12]}…)",
                )
            )
        else:
            checks.append(_check(entry, "sha256", True, f"sha256 ok ({size} bytes)"))
    return checks


def drill_query(queries: dict[str, str] | None, entry: Entry) -> str | None:
    """The drill query for a file: by its source path, its base name, or its service."""
    queries = queries or {}
    source = entry.get("source") or ""
    for key in (source, os.path.basename(source), entry.get("service") or ""):
        if key and key in queries:
            return queries[key]
    return None


def verify_set(
    set_path: str,
    key: str | None = None,
    drill: bool = True,
    queries: dict[str, str] | None = None,
    checksums_only: bool = False,
    scratch_root: str | None = None,
) -> dict[str, Any]:
    """Verify one set: checksums, integrity of each copy, then a restore drill into a scratch folder.
    Returns {set, path, ok, checks, at}; never raises for a bad set (the checks say what is wrong)."""
    manifest = read_manifest(set_path)
    checks = verify_checksums(set_path, manifest)
    bad = {c["file"] for c in checks if not c["ok"]}
    if not checksums_only:
        for entry in manifest["files"]:
            if entry["file"] in bad:
                continue
            found = kind_of(entry["kind"]).integrity(entry, os.path.join(set_path, entry["file"]))
            if found is not None:
                checks.append(_check(entry, "integrity", *found))
                if not found[0]:
                    bad.add(entry["file"])
        if drill:
            checks += restore_drill(set_path, manifest, key, queries, skip=bad, scratch_root=scratch_root)
    ok = all(c["ok"] for c in checks)
    return {
        "set": os.path.basename(set_path),
        "path": set_path,
        "ok": ok,
        "checks": checks,
        "at": iso(utcnow()),
        "drill": bool(drill and not checksums_only),
        "manifest": manifest,
    }


def prepare_scratch(scratch_root: str | None) -> str | None:
    """The folder the drill makes its temporary folder in: None (the system's), or ``scratch_root``.

    A missing ``scratch_root`` is created, mode 0700 (the drill decrypts key material into it), as
    Ansible creates its own remote_tmp; but only the last folder, like ``mkdir`` without ``-p``: a missing
    parent is more likely a typo than a wish for a new tree, and is refused in one line."""
    if not scratch_root:
        return None
    where = f"scratch_dir {scratch_root}"
    if os.path.isdir(scratch_root):
        return scratch_root
    if os.path.lexists(scratch_root):
        raise BackupError(f"{where}: exists but is not a folder (the restore drill needs a folder)")
    parent = os.path.dirname(os.path.normpath(scratch_root)) or "."
    if not os.path.isdir(parent):
        raise BackupError(f"{where}: its parent folder {parent} does not exist (create it or choose another)")
    try:
        os.mkdir(scratch_root, 0o700)
    except FileExistsError:  # made by a concurrent drill meanwhile
        pass
    except OSError as exc:
        raise BackupError(f"{where}: {describe_os_error(exc, 'creating it')}") from exc
    return scratch_root


def restore_drill(
    set_path: str,
    manifest: Manifest,
    key: str | None,
    queries: dict[str, str] | None,
    skip: Collection[str] = (),
    scratch_root: str | None = None,
) -> list[Check]:
    """Restore every file of the set into a scratch folder with the same code a real restore uses, then
    open each copy (DB query, archive listing, RDB check). The scratch folder is always removed."""
    checks = []
    folder = prepare_scratch(scratch_root)
    try:
        scratch = tempfile.mkdtemp(prefix="aitbc-drill-", dir=folder)
    except OSError as exc:
        where = f"scratch_dir {folder}" if folder else f"the temporary folder {tempfile.gettempdir()}"
        raise BackupError(f"{where}: {describe_os_error(exc, 'making the drill folder in it')}") from exc
    try:
        for index, entry in enumerate(manifest["files"]):
            if entry["file"] in skip:
                checks.append(_check(entry, "drill", False, "not drilled: the copy failed its checks"))
                continue
            kind = kind_of(entry["kind"])
            target = os.path.join(
                scratch, str(index), os.path.basename((entry.get("source") or entry["file"]).rstrip("/"))
            )
            try:
                kind.restore(entry, os.path.join(set_path, entry["file"]), target, key)
                detail = kind.drill(entry, target, drill_query(queries, entry))
                checks.append(_check(entry, "drill", True, detail))
            except BackupError as exc:
                checks.append(_check(entry, "drill", False, str(exc)))
            except (OSError, sqlite3.Error) as exc:
                checks.append(_check(entry, "drill", False, f"{type(exc).__name__}: {exc}"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return checks


def record_verification(set_path: str, result: dict[str, Any]) -> None:
    manifest = read_manifest(set_path)
    manifest["verification"] = {
        "at": result["at"],
        "ok": result["ok"],
        "drill": result["drill"],
        "failed": [f"{c['file']}: {c['check']}: {c['detail']}" for c in result["checks"] if not c["ok"]],
        "checks": len(result["checks"]),
    }
    write_manifest(set_path, manifest)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def failed_checks(result: dict[str, Any]) -> list[str]:
    """Each failed check of one set's result as its own line: ``<set>/<file>: <check> failed: <detail>``."""
    return [
        f"{result['set']}/{c['file']}: {c['check']} failed: {_one_line(c['detail'])}"
        for c in result["checks"]
        if not c["ok"]
    ]


def failure_summary(result: dict[str, Any]) -> str:
    """One set's failed checks in one line (for scripts; the module returns them one per entry)."""
    return "; ".join(failed_checks(result))


def verification_outcome(results: list[dict[str, Any]], changed: bool) -> dict[str, Any]:
    """The backup_verify module's result: ``failed_checks`` one entry per failed check, ``msg`` one line."""
    failed = [line for result in results for line in failed_checks(result)]
    ok = all(r["ok"] for r in results)
    if not results:
        msg = "no backup set to verify"
    elif ok:
        msg = f"{len(results)} set(s) verified: " + ", ".join(r["set"] for r in results)
    else:
        bad = [r["set"] for r in results if not r["ok"]]
        msg = f"backup verification failed: {len(failed)} check(s) in {', '.join(bad)}"
        if failed:
            more = f" (and {len(failed) - 1} more, see failed_checks)" if len(failed) > 1 else ""
            msg += f"; first: {failed[0]}{more}"
    return {"changed": changed, "ok": ok, "sets": results, "failed_checks": failed, "msg": msg}
