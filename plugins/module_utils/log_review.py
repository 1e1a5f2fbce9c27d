# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Log review for the ``aitbc.ops.log_review`` module: read what is new in each log, count errors and
warnings, group error lines into signatures.

Stdlib only: this file is shipped to and runs on managed hosts (Python 3.11), and imports nothing from
Ansible, so the unit tests call it directly.

Cursors: one JSON file per log in ``cursor_dir``. A file cursor holds the inode, device, offset and a
hash of the file's first bytes; a journal cursor holds journald's own cursor string. A cursor is written
(temp file + rename) only after its source was read without error, and never in check mode.

Entry point for the module: :func:`review_logs` (params dict in, result dict out; raises
:class:`LogReviewError` with a one-line message on bad input). Problems with one source (a missing file,
no journalctl) are reported in that source's ``error`` and do not fail the others.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.aitbc.ops.plugins.module_utils._files import atomic_write
from ansible_collections.aitbc.ops.plugins.module_utils._text import utcnow_iso
from ansible_collections.aitbc.ops.plugins.module_utils.masking import mask_secrets

DEFAULT_CURSOR_DIR = "/var/lib/aitbc-ops/log-cursors"
DEFAULT_MAX_LINES = 200000
DEFAULT_EXAMPLES = 3
# The built-in patterns look for a level where log formats put one, not for the word anywhere, so prose
# ("0 errors", "error_log /var/log/nginx/error.log") does not count: an upper-case level word (Python
# logging, PostgreSQL, uvicorn, supervisord), a bracketed level of any case (nginx, Apache, structlog), a
# level key (logfmt, JSON), a level or an exception name opening the line, and Redis's "#" marker.
# Each is linear in the line's length: no nested or adjacent quantifiers over the same characters.
_LEVEL_KEY = r"\b(?:(?:log[_.]?)?level|lvl|severity|levelname)\"?\s*[=:]\s*\"?"
_ERROR_LEVELS = r"(?:error|err|eror|crit|critical|alert|emerg|emergency|fatal|panic|severe)"
DEFAULT_ERROR_PATTERNS = [
    r"\b(?:ERROR|CRITICAL|CRIT|FATAL|PANIC|EMERG|EMERGENCY)\b",
    rf"(?i)\[(?:\w+:)?{_ERROR_LEVELS}\s*\]",
    rf"(?i){_LEVEL_KEY}{_ERROR_LEVELS}\b",
    r"(?i)^(?:error|fatal|panic|critical)\s*:",
    r"^(?:[\w$]+\.)*\w*(?:Exception|Error)(?::\s|:?$)",
    r"\bTraceback \(most recent call last\)",
]
DEFAULT_WARNING_PATTERNS = [
    r"\bWARN(?:ING)?\b",
    r"(?i)\[(?:\w+:)?warn(?:ing)?\s*\]",
    rf"(?i){_LEVEL_KEY}warn(?:ing)?\b",
    r"(?i)^warn(?:ing)?\s*:",
    r"\b[A-Z]\w*Warning: ",
    # Redis: "pid:role day month year time # message" ("[pid] day month time #" before Redis 3).
    r"^(?:\d+:[XCSM]|\[\d+\]) \d{1,2} [A-Z][a-z]{2}(?: \d{4})? \d{2}:\d{2}:\d{2}\.\d{3} # ",
]
# The journal's own levels (PRIORITY, syslog's): 0-3 emerg..err are errors, 4 warning is a warning.
JOURNAL_ERROR_PRIORITY = 3
JOURNAL_WARNING_PRIORITY = 4

CURSOR_VERSION = 1
# The first bytes of a file identify it: a file rewritten in place (copytruncate, then more than the old
# offset written before this review) keeps its inode and outgrows the offset, but not its first line.
HEAD_BYTES = 512
# A longer "line" is cut here and counted as one line, so one runaway line cannot exhaust memory.
MAX_LINE_BYTES = 1024 * 1024
EXAMPLE_CHARS = 500
TEMPLATE_CHARS = 300
# Per source; a flood of distinct errors would otherwise make the result (and the memory) huge.
MAX_SIGNATURES = 50
JOURNALCTL_TIMEOUT_S = 300

# logrotate's default naming: the unread tail of the previous file is read from here after a rotation.
ROTATED_SUFFIXES = (".1",)


class LogReviewError(ValueError):
    """Bad module input. The message is meant for the user as is."""


# --------------------------------------------------------------------------------------------------
# Signatures: one stable template per kind of error line
# --------------------------------------------------------------------------------------------------

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIMESTAMP_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|\s?[+-]\d{2}:?\d{2})?"  # ISO, logging
    rf"|\d{{1,2}} {_MONTH} \d{{4}} \d{{2}}:\d{{2}}:\d{{2}}(?:\.\d+)?"  # redis
    # syslog, with an optional weekday and year
    rf"|(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? )?{_MONTH} +\d{{1,2}} \d{{2}}:\d{{2}}:\d{{2}}(?: \d{{4}})?"
    r"|\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2}(?: [+-]\d{4})?"  # access logs
)
_LEADING_TS_RE = re.compile(r"^[\[(]?<ts>[\])]?[\s,:|-]*")
_UUID_RE = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_QUOTED_RE = re.compile(r"(?<![\w\\])\"[^\"\n]*\"|(?<![\w\\])'[^'\n]*'(?!\w)")
_ID_KV_RE = re.compile(r"\b((?:[A-Za-z]+[_-])?(?:id|ID)|[a-z]+Id)=(?:\"[^\"]*\"|'[^']*'|[^\s,;&]+)")
_IP_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?(?![\w.])")
_PATH_RE = re.compile(r"(?<![\w<>/])(?:/[\w.@%+=~-]+){2,}/?")
_HEX_RE = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b")
# Digits glued to a word (sha256, py3, http2) are part of the word; the rest are values.
_NUMBER_RE = re.compile(r"(?<![\w.<])\d+(?:\.\d+)*")
_SPACE_RE = re.compile(r"\s+")

TRACEBACK_RE = re.compile(r"Traceback \(most recent call last\):")
# The last line of a Python traceback: "ValueError: msg", "pkg.mod.Error", "KeyboardInterrupt".
_EXCEPTION_LINE_RE = re.compile(r"^[A-Za-z_][\w.]*(?::\s.*|:)?$")
_TRACEBACK_CONTINUATION = ("During handling of the above exception", "The above exception was the direct")


def _normalize_path(match: re.Match[str]) -> str:
    # Segments holding digits are the variable parts (pids, dates, temp names, versions).
    parts = match.group(0).split("/")
    return "/".join("<*>" if any(c.isdigit() for c in part) else part for part in parts)


def normalize(line: str) -> str:
    """The template of a log line: timestamps, ids, numbers, paths' variable parts and quoted values
    replaced by placeholders, so lines that differ only in those map to the same template."""
    text = _TIMESTAMP_RE.sub("<ts>", line.strip())
    text = _LEADING_TS_RE.sub("", text)
    text = _UUID_RE.sub("<uuid>", text)
    text = mask_secrets(text)
    text = _QUOTED_RE.sub(lambda m: m.group(0)[0] + "<str>" + m.group(0)[0], text)
    text = _ID_KV_RE.sub(lambda m: m.group(1) + "=<id>", text)
    text = _IP_RE.sub("<ip>", text)
    text = _PATH_RE.sub(_normalize_path, text)
    text = _HEX_RE.sub("<hex>", text)
    text = _NUMBER_RE.sub("<n>", text)
    text = _SPACE_RE.sub(" ", text).strip()
    return text[:TEMPLATE_CHARS]


def signature_id(template: str) -> str:
    """A short, stable id for a template (the first 12 hex digits of its sha1)."""
    return hashlib.sha1(template.encode("utf-8")).hexdigest()[:12]


# --------------------------------------------------------------------------------------------------
# Scanning lines
# --------------------------------------------------------------------------------------------------


@dataclass
class Signature:
    template: str
    count: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class _Pending:
    """An error line whose signature is not final yet: a traceback may follow it."""

    parts: list[str]
    example: list[str]


class Scanner:
    """Counts errors and warnings over a stream of lines and groups errors into signatures.

    A Python traceback is one error, not one per line: its signature is the line that introduced it
    (an ERROR line logged with the exception, or the "Traceback" line itself) plus its final
    exception line, which is what tells one traceback from another.
    """

    def __init__(self, error_res: list[re.Pattern[str]], warning_res: list[re.Pattern[str]], examples: int):
        self.error_res = error_res
        self.warning_res = warning_res
        self.max_examples = examples
        self.lines = 0
        self.errors = 0
        self.warnings = 0
        self.signatures: dict[str, Signature] = {}
        self._pending: _Pending | None = None
        self._in_traceback = False
        self._last_was_error = False

    def feed(self, text: str, display: str | None = None, level: str | None = None) -> None:
        """One line: ``text`` is matched and normalized, ``display`` (default ``text``) is the example.

        ``level`` (``error``, ``warning``) is the level the source itself gave the line (the journal's
        PRIORITY); the patterns can only raise it.
        """
        self.lines += 1
        display = text if display is None else display
        if self._in_traceback:
            if text[:1] in (" ", "\t") or not text.strip() or text.startswith(_TRACEBACK_CONTINUATION):
                return
            if TRACEBACK_RE.search(text):  # a chained traceback continues the same error
                return
            self._in_traceback = False
            if _EXCEPTION_LINE_RE.match(text) and self._pending is not None:
                self._pending.parts.append(normalize(text))
                self._pending.example.append(display)
                self._commit()
                self._last_was_error = False
                return
            self._commit()
        is_error = level == "error" or any(p.search(text) for p in self.error_res)
        if TRACEBACK_RE.search(text) and (is_error or (self._last_was_error and self._pending)):
            if not (self._last_was_error and self._pending):
                self._commit()
                self.errors += 1
                self._pending = _Pending(["Traceback (most recent call last):"], [display])
            self._in_traceback = True
            return
        self._commit()
        self._last_was_error = is_error
        if is_error:
            self.errors += 1
            self._pending = _Pending([normalize(text)], [display])
        elif level == "warning" or any(p.search(text) for p in self.warning_res):
            self.warnings += 1

    def _commit(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        template = " | ".join(pending.parts)[: TEMPLATE_CHARS * 2]
        sig_id = signature_id(template)
        sig = self.signatures.get(sig_id)
        if sig is None:
            sig = self.signatures[sig_id] = Signature(template)
        sig.count += 1
        if len(sig.examples) < self.max_examples:
            sig.examples.append("\n".join(mask_secrets(line)[:EXAMPLE_CHARS] for line in pending.example))

    def finish(self) -> dict[str, Any]:
        self._commit()
        self._in_traceback = False
        ranked = sorted(self.signatures.items(), key=lambda item: -item[1].count)  # stable: first seen first
        return {
            "new_lines": self.lines,
            "errors": self.errors,
            "warnings": self.warnings,
            "signatures": [
                {"id": sig_id, "template": sig.template, "count": sig.count, "examples": sig.examples}
                for sig_id, sig in ranked[:MAX_SIGNATURES]
            ],
            "signatures_omitted": max(0, len(ranked) - MAX_SIGNATURES),
        }


Patterns = tuple[list[re.Pattern[str]], list[re.Pattern[str]]]


def compile_patterns(
    patterns: dict[str, Any] | None, base: Patterns | None = None, where: str = ""
) -> Patterns:
    """The error and warning regexes; a bad one is a LogReviewError that names it (after ``where``).

    Without ``base``, a kind given replaces the built-in patterns of that kind; with ``base`` (a source's
    own patterns over the module's), it is added to them.
    """
    patterns = patterns or {}
    if not isinstance(patterns, dict):
        raise LogReviewError(f"{where}patterns must be a dict with error and/or warning lists")
    compiled: dict[str, list[re.Pattern[str]]] = {}
    defaults = {"error": DEFAULT_ERROR_PATTERNS, "warning": DEFAULT_WARNING_PATTERNS}
    for index, kind in enumerate(("error", "warning")):
        given = patterns.get(kind)
        if isinstance(given, str):
            given = [given]
        if base is not None:
            compiled[kind] = list(base[index])
            texts = given or []
        else:
            compiled[kind] = []
            texts = defaults[kind] if given is None else given
        for text in texts:
            try:
                compiled[kind].append(re.compile(str(text)))
            except re.error as exc:
                raise LogReviewError(
                    f"{where}patterns.{kind}: invalid regular expression {text!r}: {exc}"
                ) from exc
    return compiled["error"], compiled["warning"]


# --------------------------------------------------------------------------------------------------
# Cursors
# --------------------------------------------------------------------------------------------------


def cursor_path(cursor_dir: str, kind: str, name: str) -> str:
    """One cursor file per log: readable prefix, hash of the full path (or unit) for uniqueness."""
    slug = re.sub(r"[^\w.-]+", "_", os.path.basename(name.rstrip("/")) or name)[:60]
    digest = hashlib.sha1(f"{kind}:{name}".encode()).hexdigest()[:16]
    return os.path.join(cursor_dir, f"{kind}-{slug}-{digest}.json")


def load_cursor(path: str) -> dict[str, Any] | None:
    """The stored cursor, or None when there is none or it is unreadable (then the log is read whole)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != CURSOR_VERSION:
        return None
    return data


def save_cursor(path: str, data: dict[str, Any]) -> None:
    """Write atomically: a crash leaves the old cursor or the new one, never half of one."""
    os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
    atomic_write(path, json.dumps({"version": CURSOR_VERSION, **data}, sort_keys=True).encode(), mode=0o600)


def _head_hash(handle: Any, length: int) -> str:
    handle.seek(0)
    return hashlib.sha1(handle.read(length)).hexdigest()


# --------------------------------------------------------------------------------------------------
# File sources
# --------------------------------------------------------------------------------------------------


def _read_lines(handle: Any, start: int, budget: int, scanner: Scanner) -> tuple[int, bool]:
    """Feed complete lines from ``start``; returns (offset after the last complete line, more left).

    A last line without its newline is still being written: it is left for the next review.
    """
    handle.seek(start)
    offset = start
    read = 0
    while read < budget:
        chunk = handle.readline(MAX_LINE_BYTES)
        if not chunk:
            return offset, False
        if not chunk.endswith(b"\n") and len(chunk) < MAX_LINE_BYTES:
            return offset, False
        offset += len(chunk)
        read += 1
        scanner.feed(chunk.decode("utf-8", "replace").rstrip("\r\n"))
    # The budget is spent; "more" says whether a complete line is still waiting.
    following = handle.readline(MAX_LINE_BYTES)
    return offset, following.endswith(b"\n") or len(following) >= MAX_LINE_BYTES


def _rotated_predecessor(path: str, inode: int, dev: int) -> str | None:
    """The rotated copy of ``path`` that still is the file the cursor points into, if any."""
    for suffix in ROTATED_SUFFIXES:
        candidate = path + suffix
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if st.st_ino == inode and st.st_dev == dev:
            return candidate
    return None


def review_file(
    path: str, cursor_file: str, scanner: Scanner, max_lines: int, check_mode: bool
) -> dict[str, Any]:
    """Read the new part of one log file. Returns the source's result without the scanner counts."""
    out: dict[str, Any] = {"reset": None, "more": False, "cursor_moved": False, "error": None}
    cursor = load_cursor(cursor_file)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with block below, after the error checks
    except FileNotFoundError:
        out["error"] = f"log file not found: {path}"
        return out
    except OSError as exc:
        out["error"] = f"cannot read {path}: {exc.strerror or exc}"
        return out
    budget = max_lines
    with handle:
        st = os.fstat(handle.fileno())
        start = 0
        if cursor is None:
            out["reset"] = "new"
        elif cursor.get("inode") != st.st_ino or cursor.get("dev") != st.st_dev:
            out["reset"] = "rotated"
            # Lines written to the old file after the last review are read from its rotated copy first.
            old = _rotated_predecessor(path, int(cursor.get("inode", -1)), int(cursor.get("dev", -1)))
            if old is not None:
                with open(old, "rb") as previous:
                    _read_lines(previous, int(cursor.get("offset", 0)), budget, scanner)
                budget = max(0, max_lines - scanner.lines)
        elif st.st_size < int(cursor.get("offset", 0)):
            out["reset"] = "truncated"
        elif _head_hash(handle, int(cursor.get("head_len", 0))) != cursor.get("head_sha1"):
            out["reset"] = "replaced"
        else:
            start = int(cursor["offset"])
        out["start_offset"] = start
        offset, out["more"] = _read_lines(handle, start, budget, scanner)
        head_len = min(HEAD_BYTES, offset)
        new_cursor = {
            "kind": "file",
            "path": path,
            "inode": st.st_ino,
            "dev": st.st_dev,
            "offset": offset,
            "head_len": head_len,
            "head_sha1": _head_hash(handle, head_len),
        }
    out["end_offset"] = offset
    moved = cursor is None or any(cursor.get(k) != v for k, v in new_cursor.items())
    out["cursor_moved"] = moved
    if moved and not check_mode:
        save_cursor(cursor_file, {**new_cursor, "updated": utcnow_iso()})
    return out


# --------------------------------------------------------------------------------------------------
# Journal sources
# --------------------------------------------------------------------------------------------------


def journal_display(entry: dict[str, Any]) -> str:
    """An entry as journalctl -o short-iso shows it (without the host name, which every line shares)."""
    stamp = ""
    try:
        micros = int(entry.get("__REALTIME_TIMESTAMP", ""))
        moment = datetime.datetime.fromtimestamp(micros / 1e6, datetime.UTC)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S%z") + " "
    except (TypeError, ValueError, OverflowError, OSError):
        pass
    ident = entry.get("SYSLOG_IDENTIFIER") or ""
    pid = entry.get("_PID")
    prefix = f"{ident}[{pid}]: " if ident and pid else f"{ident}: " if ident else ""
    return f"{stamp}{prefix}{journal_message(entry)}"


def journal_message(entry: dict[str, Any]) -> str:
    message = entry.get("MESSAGE", "")
    if isinstance(message, list):  # journald exports non-UTF-8 messages as byte arrays
        try:
            message = bytes(message).decode("utf-8", "replace")
        except (TypeError, ValueError):
            message = ""
    return str(message or "")


def journal_level(entry: dict[str, Any]) -> str | None:
    """``error`` for PRIORITY 0-3, ``warning`` for 4, else None (the patterns decide)."""
    try:
        priority = int(entry.get("PRIORITY", ""))
    except (TypeError, ValueError):
        return None
    if 0 <= priority <= JOURNAL_ERROR_PRIORITY:
        return "error"
    return "warning" if priority == JOURNAL_WARNING_PRIORITY else None


def review_journal(
    unit: str, cursor_file: str, scanner: Scanner, max_lines: int, check_mode: bool
) -> dict[str, Any]:
    """Read the unit's new journal entries.

    ``-o json`` rather than ``--show-cursor -o short-iso``: every entry carries its own cursor, so a
    review that stops at max_lines resumes exactly after the last entry it counted.
    """
    out: dict[str, Any] = {"reset": None, "more": False, "cursor_moved": False, "error": None}
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        out["error"] = f"journalctl not found on this host; cannot read the journal of unit {unit}"
        return out
    cursor = load_cursor(cursor_file)
    argv = [journalctl, "-u", unit, "-o", "json", "--no-pager", "-q"]
    argv += ["--output-fields=MESSAGE,PRIORITY,SYSLOG_IDENTIFIER,_PID"]
    if cursor and cursor.get("cursor"):
        argv += ["--after-cursor", str(cursor["cursor"])]
    else:
        out["reset"] = "new"
    last_cursor = None
    count = 0
    # stderr goes to a file: a pipe nobody reads while stdout streams could fill up and stall journalctl.
    with tempfile.TemporaryFile() as errfile:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=errfile, stdin=subprocess.DEVNULL, env=_c_locale()
        )
        try:
            if proc.stdout is None:  # Popen with stdout=PIPE always sets it; keeps type checkers honest
                raise RuntimeError("journalctl produced no output pipe")
            for raw in proc.stdout:
                if count >= max_lines:
                    out["more"] = True
                    break
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                count += 1
                scanner.feed(journal_message(entry), journal_display(entry), journal_level(entry))
                last_cursor = entry.get("__CURSOR") or last_cursor
        finally:
            if out["more"]:
                proc.kill()
            proc.stdout.close()
            try:
                proc.wait(timeout=JOURNALCTL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        errfile.seek(0)
        stderr = errfile.read().decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 and not out["more"]:
        detail = stderr[-1] if stderr else ""
        out["error"] = f"journalctl -u {unit} failed (rc={proc.returncode}): {detail}".strip()
        if cursor:
            out["error"] += f" (to start over, remove the cursor {cursor_file})"
        return out
    if last_cursor is not None:
        out["cursor_moved"] = True
        if not check_mode:
            save_cursor(
                cursor_file, {"kind": "journal", "unit": unit, "cursor": last_cursor, "updated": utcnow_iso()}
            )
    return out


def _describe(exc: OSError) -> str:
    text = exc.strerror or str(exc) or exc.__class__.__name__
    return f"{text}: {exc.filename}" if exc.filename else text


def _c_locale() -> dict[str, str]:
    return {**os.environ, "LC_ALL": "C", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def review_logs(params: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    """Review every source. Returns the module result: changed, msg, reviews, totals."""
    sources = params.get("sources") or []
    cursor_dir = params.get("cursor_dir") or DEFAULT_CURSOR_DIR
    max_lines = int(params.get("max_lines") or DEFAULT_MAX_LINES)
    examples = params.get("signature_examples")
    examples = DEFAULT_EXAMPLES if examples is None else int(examples)
    if max_lines < 1:
        raise LogReviewError("max_lines must be at least 1")
    if examples < 0:
        raise LogReviewError("signature_examples must not be negative")
    base = compile_patterns(params.get("patterns"))
    per_source: list[Patterns] = []
    seen: set[tuple[str, str]] = set()
    for index, source in enumerate(sources):
        name = source.get("service") or f"sources[{index}]"
        if not source.get("service"):
            raise LogReviewError(f"sources[{index}]: service is required")
        if bool(source.get("path")) == bool(source.get("journal_unit")):
            raise LogReviewError(f"{name}: give exactly one of path and journal_unit")
        key = ("file", source["path"]) if source.get("path") else ("journal", source["journal_unit"])
        if key in seen:  # two sources on one cursor would each move it past the other's lines
            raise LogReviewError(f"{name}: {key[1]} is listed twice")
        seen.add(key)
        own = source.get("patterns")
        per_source.append(compile_patterns(own, base, f"{name}: ") if own else base)

    reviews = []
    for source, (error_res, warning_res) in zip(sources, per_source, strict=True):
        scanner = Scanner(error_res, warning_res, examples)
        if source.get("path"):
            path = os.path.abspath(os.path.expanduser(source["path"]))
            entry: dict[str, Any] = {"service": source["service"], "path": path, "journal_unit": None}
            cfile = cursor_path(cursor_dir, "file", path)
            try:
                state = review_file(path, cfile, scanner, max_lines, check_mode)
            except OSError as exc:  # a read or the cursor write failed: report it, review the others
                state = {"error": f"cannot review {path}: {_describe(exc)}"}
        else:
            unit = source["journal_unit"]
            entry = {"service": source["service"], "path": None, "journal_unit": unit}
            cfile = cursor_path(cursor_dir, "journal", unit)
            try:
                state = review_journal(unit, cfile, scanner, max_lines, check_mode)
            except OSError as exc:
                state = {"error": f"cannot review the journal of {unit}: {_describe(exc)}"}
        entry.update(scanner.finish())
        entry.update({"reset": None, "more": False, "cursor_moved": False, "error": None, **state})
        reviews.append(entry)

    totals = {k: sum(r[k] for r in reviews) for k in ("new_lines", "errors", "warnings")}
    failed = [r["service"] for r in reviews if r["error"]]
    changed = any(r["cursor_moved"] for r in reviews)
    msg = (
        f"{totals['new_lines']} new lines in {len(reviews) - len(failed)} of {len(reviews)} sources: "
        f"{totals['errors']} errors, {totals['warnings']} warnings"
    )
    if failed:
        msg += f"; not reviewed: {', '.join(failed)}"
    return {"changed": changed, "msg": msg, "reviews": reviews, "totals": totals}
