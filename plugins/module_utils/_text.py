# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Text, sizes and times as the modules report them."""

from __future__ import annotations

import datetime
import os
import re

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_BYTES_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGTPEZY]?)(i?B)?\s*$", re.IGNORECASE)


def human_bytes(num: float | None) -> str:
    """1536 -> '1.5 KiB'; None -> '?'."""
    if num is None:
        return "?"
    num = float(num)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(num) < 1024.0:
            return f"{num:.0f} B" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024.0
    return f"{num:.1f} PiB"


def parse_bytes(value: object) -> int:
    """'5G', '5 GB', '5GiB', 1024 -> int bytes (powers of 1024, as Ansible's human_to_bytes)."""
    if isinstance(value, bool):
        raise ValueError("expected a size in bytes, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(round(value))
    match = _BYTES_RE.match(str(value))
    if not match:
        raise ValueError(f"cannot read '{value}' as a size (examples: 1048576, 512M, 5G)")
    power = " KMGTPEZY".index(match.group(2).upper() or " ")
    return int(round(float(match.group(1)) * 1024**power))


def first_line(*texts: str | None) -> str:
    """The first non-blank line of the first text that has one, stripped."""
    for text in texts:
        for line in (text or "").splitlines():
            if line.strip():
                return line.strip()
    return ""


def tail_file(path: str | None, n: int = 20, start: int = 0) -> list[str]:
    """The last `n` lines of a text file (only bytes after offset `start`); [] when it is missing."""
    if not path or n <= 0:
        return []
    try:
        with open(path, "rb") as handle:
            pos = handle.seek(0, os.SEEK_END)
            data = b""
            # Read backwards in blocks: the cost depends on the lines wanted, not on the file's size.
            while pos > start and data.count(b"\n") <= n:
                step = min(65536, pos - start)
                pos -= step
                handle.seek(pos)
                data = handle.read(step) + data
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-n:]


def tail_text(text: str, n: int) -> list[str]:
    """The last `n` lines of a text (a command's output)."""
    return (text or "").splitlines()[-n:] if n > 0 else []


def utcnow() -> datetime.datetime:
    """Now in UTC, to the second (the precision of every time the modules record)."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def iso(moment: datetime.datetime) -> str:
    return moment.strftime(ISO_FORMAT)


def utcnow_iso() -> str:
    return iso(utcnow())


def iso_from_epoch(epoch: float) -> str:
    return iso(datetime.datetime.fromtimestamp(epoch, datetime.UTC))


def parse_iso(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, ISO_FORMAT).replace(tzinfo=datetime.UTC)
