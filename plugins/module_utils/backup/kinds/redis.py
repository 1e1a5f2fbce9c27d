# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis: BGSAVE through a minimal RESP client, a copy of the RDB file, and the RDB checks."""

from __future__ import annotations

import os
import shutil
import socket
import time
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._commands import CommandError, run_command
from ansible_collections.aitbc.ops.plugins.module_utils._files import fsync_dir, fsync_file
from ansible_collections.aitbc.ops.plugins.module_utils._resp import (
    RespError,
    read_reply,
    resp_command,
)
from ansible_collections.aitbc.ops.plugins.module_utils.backup.base import BackupError, Entry, Source
from ansible_collections.aitbc.ops.plugins.module_utils.backup.kinds.base import (
    Finding,
    SourceKind,
    stage_copy,
)

RDB_CHECK_TIMEOUT = 300
_CLOSED = "redis closed the connection"


class RedisClient:
    """Just enough RESP for BGSAVE, LASTSAVE, INFO and CONFIG GET."""

    def __init__(self, host: str, port: int, password: str | None = None, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = self.sock.makefile("rb")
        if password:
            self.call("AUTH", password)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def call(self, *words: str | bytes) -> Any:
        self.sock.sendall(resp_command(*words))
        try:
            return read_reply(self.reader)
        except RespError as exc:
            # A closed connection is named as such; anything Redis or the parser said gets a prefix.
            text = str(exc)
            raise BackupError(text if text == _CLOSED else f"redis: {text}") from exc


def _redis_info(client: RedisClient, section: str) -> dict[str, str]:
    text = client.call("INFO", section) or ""
    return dict(
        line.split(":", 1) for line in str(text).splitlines() if ":" in line and not line.startswith("#")
    )


def check_rdb(path: str) -> Finding:
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
        try:
            rc, out, err = run_command([checker, path], RDB_CHECK_TIMEOUT)
        except CommandError as exc:
            return False, f"redis-check-rdb: {exc}"
        if rc != 0:
            lines = [line for line in (out + err).splitlines() if line.strip()]
            return False, "redis-check-rdb: " + (lines[-1].strip() if lines else f"rc {rc}")
        return True, f"RDB v{version}, redis-check-rdb ok"
    return True, f"RDB v{version} header and end marker ok"


class RedisKind(SourceKind):
    """Redis: BGSAVE, wait until LASTSAVE moves, then copy the RDB file."""

    name = "redis"

    def file_name(self, source: Source) -> str:
        return f"{source.get('service') or 'redis'}.dump.rdb"

    def check_source(self, source: Source) -> None:
        pass

    def backup(self, source: Source, folder: str, key: str | None) -> Entry:
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

    def _snapshot(self, client: RedisClient, timeout: float) -> str | None:
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
    def _wait(deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            raise BackupError(f"redis: timed out waiting for {what}")
        time.sleep(0.1)

    def integrity(self, entry: Entry, path: str) -> Finding | None:
        return check_rdb(path)

    def restore(self, entry: Entry, src: str, target: str, key: str | None) -> list[str]:
        os.replace(stage_copy(src, target, entry), target)
        fsync_dir(os.path.dirname(target))
        return []

    def drill(self, entry: Entry, restored: str, query: str | None) -> str:
        ok, detail = check_rdb(restored)
        if not ok:
            raise BackupError(detail)
        return detail
