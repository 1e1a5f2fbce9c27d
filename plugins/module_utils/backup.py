# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup sets: write them, list them, verify them with a restore drill, prune them, restore from them.

Shipped to managed hosts with the aitbc.ops.backup* and aitbc.ops.restore modules: the standard library
only, plus ``cryptography`` (through vault_format) when an archive is encrypted.

A set is one folder per host and run, ``<root>/<host>/<UTC timestamp>/``, holding the copied files, a
``SHA256SUMS`` file (``sha256sum -c`` reads it) and ``manifest.json``. It is written as
``.partial-<name>-<pid>`` and renamed into place only when complete, so a set without a manifest, or a
partial folder, is never taken for a good one.

Source kinds live in one registry, ``KINDS`` (kind name -> ``SourceKind`` subclass): each knows how to
back a source up, how to restore it to a path, and how to prove a copy in the drill.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import io
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time

from ansible_collections.aitbc.ops.plugins.module_utils import vault_format

FORMAT = 1
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
PARTIAL_PREFIX = ".partial-"
SET_NAME_RE = re.compile(r"^\d{8}T\d{6}Z(?:-\d+)?$")
TIME_FORMAT = "%Y%m%dT%H%M%SZ"
CHUNK = 1024 * 1024
# Encrypted archives are built in memory (about 10x their size at peak), so no plaintext copy of key
# material ever touches the disk. Key stores are small; larger folders belong in an unencrypted source.
MAX_ENCRYPTED_ARCHIVE = 64 * 1024 * 1024
RESTORE_TMP = ".aitbc-restore.tmp"
RESTORE_OLD = ".aitbc-restore-old"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


class BackupError(Exception):
    """A backup, verification or restore that cannot go on. The message is one line for the user."""


def utcnow():
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path, data):
    """Write bytes to a new 0600 file and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def describe_os_error(exc, doing):
    if exc.errno == errno.ENOSPC:
        return f"no space left on device while {doing}"
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc} while {doing}{where}"


# --------------------------------------------------------------------------------------------------
# Source kinds
# --------------------------------------------------------------------------------------------------


class SourceKind:
    """One kind of thing to back up. Subclasses set ``name`` and implement the three operations.

    ``backup(source, folder, key)`` writes one file into ``folder`` and returns its manifest entry
    (name, kind, source, extra facts); ``restore(entry, src, target, key)`` puts the data of ``src``
    (a file of a set) at ``target`` atomically; ``drill(entry, restored, query)`` proves a restored copy
    usable and returns a short detail (raises BackupError when it is not).
    """

    name = ""
    sensitive = False  # holds key material: must be encrypted before it leaves the host

    def file_name(self, source):
        base = os.path.basename(source["path"].rstrip("/")) or self.name
        service = source.get("service") or "host"
        return f"{service}.{base}"

    def check_source(self, source):
        if not os.path.exists(source["path"]):
            raise BackupError(f"{self.name} source not found: {source['path']}")

    def backup(self, source, folder, key):
        raise NotImplementedError

    def restore(self, entry, src, target, key):
        raise NotImplementedError

    def drill(self, entry, restored, query):
        raise NotImplementedError

    def integrity(self, entry, path):
        """A check of the copy in the set itself, besides its checksum (None when there is none)."""
        return None


def _owner(path):
    st = os.stat(path)
    return {"mode": oct(st.st_mode & 0o7777), "uid": st.st_uid, "gid": st.st_gid}


def _apply_owner(path, entry):
    owner = entry.get("owner") or {}
    if "mode" in owner:
        os.chmod(path, int(owner["mode"], 8))
    if os.geteuid() == 0 and "uid" in owner:
        os.chown(path, owner["uid"], owner["gid"])


def _sqlite_readonly(path):
    # immutable: no locks and no -wal/-shm files next to a copy that nothing else writes.
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)


def sqlite_integrity(path):
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


class SqliteKind(SourceKind):
    """A SQLite database, copied with the online backup API: one read transaction, so the copy is the
    state of one commit even while writers go on (WAL or rollback journal)."""

    name = "sqlite"

    def backup(self, source, folder, key):
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

    def integrity(self, entry, path):
        return sqlite_integrity(path)

    def restore(self, entry, src, target, key):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = target + RESTORE_TMP
        shutil.copyfile(src, tmp)
        _apply_owner(tmp, entry)
        fsync_file(tmp)
        # A stale -wal beside the new file would be replayed into it: set the old ones aside first.
        aside = []
        for suffix in SQLITE_SIDECARS:
            if os.path.exists(target + suffix):
                os.replace(target + suffix, target + suffix + RESTORE_OLD)
                aside.append(target + suffix + RESTORE_OLD)
        os.replace(tmp, target)
        fsync_dir(os.path.dirname(target))
        for path in aside:
            os.unlink(path)

    def drill(self, entry, restored, query):
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


def _safe_members(archive, dest):
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

    def file_name(self, source):
        return super().file_name(source) + ".tar.gz"

    def backup(self, source, folder, key):
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
            write_private(target, vault_format.encrypt_bytes(buffer.getvalue(), key))
        else:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                with tarfile.open(fileobj=handle, mode="w:gz", compresslevel=6) as archive:
                    archive.add(path, arcname=arcname)
                handle.flush()
                os.fsync(handle.fileno())
        return {"file": os.path.basename(target), "encrypted": bool(key), "arcname": arcname}

    def open_archive(self, entry, src, key):
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

    def extract(self, entry, src, dest, key):
        """Unpack the archive into ``dest``; returns the path of the restored top entry."""
        try:
            with self.open_archive(entry, src, key) as archive:
                members = _safe_members(archive, dest)
                archive.extractall(dest, members=members)  # noqa: S202 - members checked above
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise BackupError(f"{entry['file']}: archive is damaged: {exc}") from exc
        return os.path.join(dest, entry.get("arcname") or os.path.basename(entry["source"]))

    def restore(self, entry, src, target, key):
        parent = os.path.dirname(target.rstrip("/"))
        os.makedirs(parent, exist_ok=True)
        staging = target.rstrip("/") + RESTORE_TMP
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging, mode=0o700)
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

    def integrity(self, entry, path):
        if entry.get("encrypted"):
            with open(path, "rb") as handle:
                head = handle.read(64)
            if not vault_format.is_vault(head):
                return False, "encrypted archive lacks the ansible-vault header"
            return True, "ansible-vault envelope present"
        return None

    def drill(self, entry, restored, query):
        if os.path.isdir(restored):
            count = sum(len(files) for _root, _dirs, files in os.walk(restored))
            return f"archive decrypted and unpacked: {count} file(s)"
        return "archive unpacked: 1 file"


def _resp(*words):
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        raw = word.encode() if isinstance(word, str) else word
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class RedisClient:
    """Just enough RESP for BGSAVE, LASTSAVE, INFO and CONFIG GET."""

    def __init__(self, host, port, password=None, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = self.sock.makefile("rb")
        if password:
            self.call("AUTH", password)

    def close(self):
        self.reader.close()
        self.sock.close()

    def call(self, *words):
        self.sock.sendall(_resp(*words))
        return self._read()

    def _read(self):
        line = self.reader.readline()
        if not line:
            raise BackupError("redis closed the connection")
        kind, rest = line[:1], line[1:].rstrip(b"\r\n")
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise BackupError(f"redis: {rest.decode(errors='replace')}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.reader.read(size + 2)[:-2].decode(errors="replace")
        if kind == b"*":
            return [self._read() for _index in range(int(rest))]
        raise BackupError(f"redis: unexpected reply {line[:40]!r}")


def _redis_info(client, section):
    text = client.call("INFO", section) or ""
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def check_rdb(path):
    """(ok, detail) for an RDB file: the header, then redis-check-rdb where installed."""
    with open(path, "rb") as handle:
        head = handle.read(9)
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(size - 9, 0))
        tail = handle.read(9)
    if len(head) < 9 or not head.startswith(b"REDIS") or not head[5:9].isdigit():
        return False, "not an RDB file (no REDIS header)"
    version = int(head[5:9])
    if version >= 5 and (len(tail) < 9 or tail[0] != 0xFF):
        return False, f"RDB v{version} lacks its end marker (truncated?)"
    checker = shutil.which("redis-check-rdb") or next(
        (p for p in ("/usr/bin/redis-check-rdb", "/usr/local/bin/redis-check-rdb") if os.path.exists(p)), None
    )
    if checker:
        done = subprocess.run([checker, path], capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
            return False, "redis-check-rdb: " + (lines[-1].strip() if lines else f"rc {done.returncode}")
        return True, f"RDB v{version}, redis-check-rdb ok"
    return True, f"RDB v{version} header and end marker ok"


class RedisKind(SourceKind):
    """Redis: BGSAVE, wait until LASTSAVE moves, then copy the RDB file."""

    name = "redis"

    def file_name(self, source):
        return f"{source.get('service') or 'redis'}.dump.rdb"

    def check_source(self, source):
        pass

    def backup(self, source, folder, key):
        client = RedisClient(
            source.get("host") or "127.0.0.1", int(source.get("port") or 6379), source.get("password")
        )
        try:
            rdb = self._snapshot(client, float(source.get("timeout") or 300))
            rdb = source.get("rdb") or rdb
            version = _redis_info(client, "server").get("redis_version", "")
        finally:
            client.close()
        if not rdb or not os.path.isfile(rdb):
            raise BackupError(f"redis RDB file not found: {rdb or '(CONFIG GET dir/dbfilename failed)'}")
        target = os.path.join(folder, self.file_name(source))
        shutil.copyfile(rdb, target)
        os.chmod(target, 0o600)
        fsync_file(target)
        return {"file": os.path.basename(target), "rdb": rdb, "redis_version": version, "source": rdb}

    def _snapshot(self, client, timeout):
        deadline = time.monotonic() + timeout
        while _redis_info(client, "persistence").get("rdb_bgsave_in_progress") == "1":
            self._wait(deadline, "a running BGSAVE")
        before = client.call("LASTSAVE")
        while int(time.time()) <= before:  # LASTSAVE counts seconds: make ours distinguishable
            time.sleep(0.05)
        client.call("BGSAVE")
        while client.call("LASTSAVE") == before:
            self._wait(deadline, "BGSAVE")
        status = _redis_info(client, "persistence").get("rdb_last_bgsave_status", "ok")
        if status != "ok":
            raise BackupError(f"redis BGSAVE failed (rdb_last_bgsave_status:{status})")
        try:
            folder = client.call("CONFIG", "GET", "dir")[1]
            name = client.call("CONFIG", "GET", "dbfilename")[1]
            return os.path.join(folder, name)
        except (BackupError, IndexError, TypeError):
            return None

    @staticmethod
    def _wait(deadline, what):
        if time.monotonic() > deadline:
            raise BackupError(f"redis: timed out waiting for {what}")
        time.sleep(0.1)

    def integrity(self, entry, path):
        return check_rdb(path)

    def restore(self, entry, src, target, key):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = target + RESTORE_TMP
        shutil.copyfile(src, tmp)
        _apply_owner(tmp, entry)
        fsync_file(tmp)
        os.replace(tmp, target)
        fsync_dir(os.path.dirname(target))

    def drill(self, entry, restored, query):
        ok, detail = check_rdb(restored)
        if not ok:
            raise BackupError(detail)
        return detail


KINDS = {kind.name: kind() for kind in (SqliteKind, FilesKind, RedisKind)}


def kind_of(name):
    if name not in KINDS:
        raise BackupError(f"unknown backup kind {name!r} (known: {', '.join(sorted(KINDS))})")
    return KINDS[name]


# --------------------------------------------------------------------------------------------------
# Writing a set
# --------------------------------------------------------------------------------------------------


def host_dir(root, host):
    if not host or "/" in host or host in (".", ".."):
        raise BackupError(f"bad host name for a backup folder: {host!r}")
    return os.path.join(root, host)


def _new_set_name(folder, now):
    base = now.strftime(TIME_FORMAT)
    name, counter = base, 1
    while os.path.exists(os.path.join(folder, name)):
        counter += 1
        name = f"{base}-{counter}"
    return name


def normalize_sources(sources):
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


def plan_backup(sources):
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


def create_set(root, host, sources, key=None, label="", tool_version="", now=None):
    """Back up every source into a new set; returns its manifest. On any error the partial folder is
    removed, no set appears, and the sources are untouched (they are only read)."""
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
    entries = []
    try:
        os.mkdir(partial, 0o700)
        for source in sources:
            kind = kind_of(source["kind"])
            entry = {
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
                entry["owner"] = _owner(entry["source"])
            path = os.path.join(partial, entry["file"])
            entry["size"] = os.path.getsize(path)
            entry["sha256"] = sha256_file(path)
            entry["sensitive"] = bool(kind.sensitive or source.get("sensitive"))
            entry.setdefault("encrypted", False)
            entries.append(entry)
        manifest = {
            "format": FORMAT,
            "set": name,
            "host": host,
            "label": label or "",
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
        write_private(os.path.join(partial, SUMS), sums.encode())
        write_private(
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


def read_manifest(set_path):
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
    return manifest


def write_manifest(set_path, manifest):
    data = {k: v for k, v in manifest.items() if k != "path"}
    tmp = os.path.join(set_path, f".{MANIFEST}.{os.getpid()}.tmp")
    if os.path.exists(tmp):
        os.unlink(tmp)
    write_private(tmp, json.dumps(data, indent=2, sort_keys=True).encode())
    os.replace(tmp, os.path.join(set_path, MANIFEST))


def set_summary(set_path, now=None):
    """One row of a listing: a complete set (with its manifest) or a broken/partial one."""
    now = now or utcnow()
    name = os.path.basename(set_path)
    row = {
        "set": name,
        "path": set_path,
        "complete": False,
        "verified": None,
        "verified_at": None,
        "label": "",
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


def list_sets(root, host, now=None):
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


def newest(sets, verified=False):
    chosen = [s for s in sets if s["verified"]] if verified else sets
    return chosen[-1] if chosen else None


def resolve_set(root, host, ref):
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


# --------------------------------------------------------------------------------------------------
# Verification and the restore drill
# --------------------------------------------------------------------------------------------------


def _check(entry, check, ok, detail):
    return {
        "file": entry.get("file", "-"),
        "service": entry.get("service", ""),
        "check": check,
        "ok": bool(ok),
        "detail": detail,
    }


def verify_checksums(set_path, manifest):
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


def drill_query(queries, entry):
    """The drill query for a file: by its source path, its base name, or its service."""
    queries = queries or {}
    source = entry.get("source") or ""
    for key in (source, os.path.basename(source), entry.get("service") or ""):
        if key and key in queries:
            return queries[key]
    return None


def verify_set(set_path, key=None, drill=True, queries=None, checksums_only=False, scratch_root=None):
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


def restore_drill(set_path, manifest, key, queries, skip=(), scratch_root=None):
    """Restore every file of the set into a scratch folder with the same code a real restore uses, then
    open each copy (DB query, archive listing, RDB check). The scratch folder is always removed."""
    checks = []
    scratch = tempfile.mkdtemp(prefix="aitbc-drill-", dir=scratch_root)
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


def record_verification(set_path, result):
    manifest = read_manifest(set_path)
    manifest["verification"] = {
        "at": result["at"],
        "ok": result["ok"],
        "drill": result["drill"],
        "failed": [f"{c['file']}: {c['check']}: {c['detail']}" for c in result["checks"] if not c["ok"]],
        "checks": len(result["checks"]),
    }
    write_manifest(set_path, manifest)


def failure_summary(result):
    failed = [c for c in result["checks"] if not c["ok"]]
    return "; ".join(f"{result['set']}/{c['file']}: {c['check']} failed: {c['detail']}" for c in failed)


# --------------------------------------------------------------------------------------------------
# Retention
# --------------------------------------------------------------------------------------------------


def retention_plan(sets, keep_last, keep_days, now=None):
    """Which complete sets to keep and which to delete, with the reason for each kept one.

    Kept: the newest ``keep_last``; the newest set of each UTC day for the last ``keep_days`` days; and
    always the newest verified set, whatever its age."""
    now = now or utcnow()
    keep = {}
    for row in sets[-keep_last:] if keep_last > 0 else []:
        keep.setdefault(row["set"], f"one of the last {keep_last}")
    cutoff = (now - datetime.timedelta(days=keep_days)).date()
    by_day = {}
    for row in sets:
        day = parse_iso(row["created"]).date()
        if keep_days > 0 and day > cutoff:
            by_day[day] = row  # sets are oldest first: the last one of a day wins
    for day, row in by_day.items():
        keep.setdefault(row["set"], f"newest of {day.isoformat()} (daily, {keep_days} days)")
    verified = newest(sets, verified=True)
    if verified:
        keep.setdefault(verified["set"], "newest verified set")
    delete = [row for row in sets if row["set"] not in keep]
    return keep, delete


def prune(root, host, keep_last, keep_days, partial_max_age_h=6.0, check_mode=False, now=None):
    sets, leftovers = list_sets(root, host, now)
    keep, delete = retention_plan(sets, keep_last, keep_days, now)
    stale = [
        row for row in leftovers if time.time() - row.get("mtime", time.time()) > partial_max_age_h * 3600
    ]
    if not check_mode:
        for row in delete + stale:
            shutil.rmtree(row["path"])
    return {
        "kept": [{"set": name, "reason": reason} for name, reason in sorted(keep.items())],
        "deleted": [row["set"] for row in delete],
        "deleted_leftovers": [os.path.basename(row["path"]) for row in stale],
        "changed": bool(delete or stale),
    }


# --------------------------------------------------------------------------------------------------
# Restore
# --------------------------------------------------------------------------------------------------


def select_entries(manifest, items):
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


def restore_plan(set_path, items):
    manifest = read_manifest(set_path)
    return manifest, [
        {"file": e["file"], "kind": e["kind"], "service": e.get("service", ""), "target": e["source"]}
        for e in select_entries(manifest, items)
    ]


def restore_set(set_path, items, key=None):
    """Put the selected files of a set back at their source paths, each atomically (write, then
    rename). The copies are checked against the manifest first: a corrupted set restores nothing."""
    manifest, plan = restore_plan(set_path, items)
    chosen = {p["file"] for p in plan}
    bad = [c for c in verify_checksums(set_path, manifest) if c["file"] in chosen and not c["ok"]]
    if bad:
        raise BackupError(f"refusing to restore from {set_path}: {bad[0]['file']}: {bad[0]['detail']}")
    for entry in manifest["files"]:
        if entry["file"] not in chosen:
            continue
        try:
            kind_of(entry["kind"]).restore(entry, os.path.join(set_path, entry["file"]), entry["source"], key)
        except OSError as exc:
            raise BackupError(f"restoring {entry['source']}: {describe_os_error(exc, 'writing it')}") from exc
    return manifest, plan
