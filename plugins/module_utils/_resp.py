# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Redis protocol (RESP), as far as the probes and backups need it: commands out, replies in."""

from __future__ import annotations

from typing import Any, BinaryIO


class RespError(Exception):
    """An error reply from Redis (`-ERR ...`), or a reply this reader cannot parse."""


def resp_command(*words: str | bytes) -> bytes:
    """A RESP array of bulk strings, as redis-cli sends commands."""
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        raw = word.encode("utf-8") if isinstance(word, str) else word
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def read_reply(reader: BinaryIO) -> Any:
    """One reply from a buffered socket file: a str (simple or bulk), int, None (nil bulk) or a list."""
    line = reader.readline()
    if not line:
        raise RespError("redis closed the connection")
    kind, rest = line[:1], line[1:].rstrip(b"\r\n")
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RespError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else reader.read(size + 2)[:-2].decode(errors="replace")
    if kind == b"*":
        return [read_reply(reader) for _index in range(int(rest))]
    raise RespError(f"unexpected reply {line[:40]!r}")
