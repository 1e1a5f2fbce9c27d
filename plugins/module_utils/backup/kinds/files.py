# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Folders and files as tar.gz, encrypted in the ansible-vault format when a key is given."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils import vault_format
from ansible_collections.aitbc.ops.plugins.module_utils._files import fsync_dir, write_new_private
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import (
    MAX_ENCRYPTED_ARCHIVE,
    RESTORE_OLD,
    RESTORE_TMP,
    BackupError,
    Entry,
    Source,
)
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.base import Finding, SourceKind


def _safe_members(archive: tarfile.TarFile, dest: str) -> list[tarfile.TarInfo]:
    """Tar members that stay inside ``dest``: no absolute paths, no .., no links, devices or fifos."""
    root = os.path.realpath(dest)
    members = []
    for member in archive.getmembers():
        target = os.path.realpath(os.path.join(root, member.name))
        if member.name.startswith("/") or not (target == root or target.startswith(root + os.sep)):
            raise BackupError(f"archive member escapes its folder: {member.name}")
        if not (member.isfile() or member.isdir()):
            raise BackupError(f"archive member is not a plain file or folder: {member.name}")
        members.append(member)
    return members


class FilesKind(SourceKind):
    """A folder (or one file) such as the wallet keystore, as tar.gz; encrypted in the ansible-vault
    format when a key is given (ansible-vault decrypt opens it with the same password)."""

    name = "files"
    sensitive = True

    def file_name(self, source: Source) -> str:
        return super().file_name(source) + ".tar.gz"

    def backup(self, source: Source, folder: str, key: str | None) -> Entry:
        path = source["path"].rstrip("/") or "/"
        self.check_source(source)
        target = os.path.join(folder, self.file_name(source))
        arcname = os.path.basename(path)
        if key:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
                archive.add(path, arcname=arcname)
            if buffer.tell() > MAX_ENCRYPTED_ARCHIVE:
                raise BackupError(f"{path}: archive larger than {MAX_ENCRYPTED_ARCHIVE} bytes to encrypt")
            target += ".vault"
            write_new_private(target, vault_format.encrypt_bytes(buffer.getvalue(), key))
        else:
            # Streamed to disk: an unencrypted archive may be large.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                with tarfile.open(fileobj=handle, mode="w:gz", compresslevel=6) as archive:
                    archive.add(path, arcname=arcname)
                handle.flush()
                os.fsync(handle.fileno())
        return {"file": os.path.basename(target), "encrypted": bool(key), "arcname": arcname}

    def open_archive(self, entry: Entry, src: str, key: str | None) -> tarfile.TarFile:
        with open(src, "rb") as handle:
            data = handle.read()
        if entry.get("encrypted"):
            if not key:
                raise BackupError(f"{entry['file']} is encrypted: the backup key is needed to read it")
            try:
                data = vault_format.decrypt_bytes(data, key)
            except vault_format.VaultFormatError as exc:
                raise BackupError(f"{entry['file']}: cannot decrypt: {exc}") from exc
        try:
            return tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BackupError(f"{entry['file']}: not a readable tar.gz archive: {exc}") from exc

    def extract(self, entry: Entry, src: str, dest: str, key: str | None) -> str:
        """Unpack the archive into ``dest``; returns the path of the restored top entry."""
        try:
            with self.open_archive(entry, src, key) as archive:
                members = _safe_members(archive, dest)
                archive.extractall(dest, members=members)  # noqa: S202 - members checked above
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise BackupError(f"{entry['file']}: archive is damaged: {exc}") from exc
        return os.path.join(dest, entry.get("arcname") or os.path.basename(entry["source"]))

    def restore(self, entry: Entry, src: str, target: str, key: str | None) -> list[str]:
        """Unpack beside ``target`` and swap it in; the old folder goes (the pre-restore set holds it)."""
        parent = os.path.dirname(target.rstrip("/"))
        os.makedirs(parent, exist_ok=True)
        # A fresh private folder (random name, 0700): nothing planted under a fixed name is followed.
        name = os.path.basename(target.rstrip("/"))
        staging = tempfile.mkdtemp(dir=parent, prefix=name + RESTORE_TMP + "-")
        try:
            unpacked = self.extract(entry, src, staging, key)
            old = target.rstrip("/") + RESTORE_OLD
            shutil.rmtree(old, ignore_errors=True)
            if os.path.lexists(target):
                os.replace(target, old)
            os.replace(unpacked, target)
            fsync_dir(parent)
            if os.path.isdir(old):
                shutil.rmtree(old)
            elif os.path.lexists(old):
                os.unlink(old)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return []

    def restored_state(self, entry: Entry, src: str, key: str | None) -> dict[str, Any]:
        """What the target will hold after a restore, read from the archive (see restore.target_state)."""
        try:
            with self.open_archive(entry, src, key) as archive:
                top = entry.get("arcname") or os.path.basename(entry["source"].rstrip("/"))
                members = [m for m in archive.getmembers() if m.name == top or m.name.startswith(top + "/")]
                head = next((m for m in members if m.name == top), None)
                if head is not None and head.isfile():
                    data = archive.extractfile(head)
                    digest = hashlib.sha256(data.read() if data else b"").hexdigest()
                    return {"exists": True, "type": "file", "size": head.size, "sha256": digest}
                files = [m for m in members if m.isfile()]
                return {
                    "exists": True,
                    "type": "folder",
                    "files": len(files),
                    "bytes": sum(m.size for m in files),
                }
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BackupError(f"{entry['file']}: archive is damaged: {exc}") from exc

    def integrity(self, entry: Entry, path: str) -> Finding | None:
        if entry.get("encrypted"):
            with open(path, "rb") as handle:
                head = handle.read(64)
            if not vault_format.is_vault(head):
                return False, "encrypted archive lacks the ansible-vault header"
            return True, "ansible-vault envelope present"
        return None

    def drill(self, entry: Entry, restored: str, query: str | None) -> str:
        if os.path.isdir(restored):
            count = sum(len(files) for _root, _dirs, files in os.walk(restored))
            return f"archive decrypted and unpacked: {count} file(s)"
        return "archive unpacked: 1 file"
