"""plugins/module_utils/log_review.py on real files in tmp_path (cursors, rotation, truncation, check mode,
max_lines, signatures). The controller side, opsrunner/logreview.py: tests/unit/test_logreview_hooks.py."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils.log_review import (
    LogReviewError,
    Scanner,
    compile_patterns,
    cursor_path,
    journal_level,
    normalize,
    review_logs,
    signature_id,
)
from ansible_collections.aitbc.ops.plugins.module_utils.masking import mask_secrets

# ------------------------------------------------------------------------------------------ helpers


def write(path: Path, *lines: str, mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


def review(tmp_path: Path, *paths: Path, check: bool = False, **params) -> list[dict]:
    sources = [{"service": p.stem, "path": str(p)} for p in paths]
    params = {"sources": sources, "cursor_dir": str(tmp_path / "cursors"), **params}
    return review_logs(params, check_mode=check)["reviews"]


def counts(entry: dict) -> tuple[int, int, int]:
    return entry["new_lines"], entry["errors"], entry["warnings"]


# ------------------------------------------------------------------------------------------ cursors


def test_second_review_reads_only_appended_lines(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    write(log, "INFO start", "ERROR db down", "WARNING slow query", "INFO ok")
    [first] = review(tmp_path, log)
    assert counts(first) == (4, 1, 1) and first["reset"] == "new" and first["cursor_moved"]

    [again] = review(tmp_path, log)
    assert counts(again) == (0, 0, 0) and not again["cursor_moved"] and again["reset"] is None

    write(log, "ERROR db down", "INFO fine")
    [third] = review(tmp_path, log)
    assert counts(third) == (2, 1, 0) and third["start_offset"] == first["end_offset"]
    assert third["reset"] is None


def test_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    write(log, "INFO one")
    with open(log, "a") as handle:
        handle.write("ERROR half-writ")
    assert counts(review(tmp_path, log)[0]) == (1, 0, 0)
    with open(log, "a") as handle:
        handle.write("ten line\n")
    [entry] = review(tmp_path, log)
    assert counts(entry) == (1, 1, 0)
    assert entry["signatures"][0]["examples"] == ["ERROR half-written line"]


def test_rotation_reads_the_old_tail_then_the_new_file(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    write(log, "INFO a", "INFO b")
    review(tmp_path, log)
    write(log, "ERROR written before rotation")
    os.rename(log, tmp_path / "node.log.1")  # logrotate's default: rename, then create a new file
    write(log, "WARNING after rotation", "INFO c")
    [entry] = review(tmp_path, log)
    assert entry["reset"] == "rotated"
    assert counts(entry) == (3, 1, 1)

    # Rotated away with no copy left (or compressed): the new file is read from its start.
    os.rename(log, tmp_path / "node.log.2")
    (tmp_path / "node.log.1").unlink()
    write(log, "INFO fresh")
    [entry] = review(tmp_path, log)
    assert entry["reset"] == "rotated" and counts(entry) == (1, 0, 0)


def test_truncation_and_in_place_rewrite_are_read_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "rpc.log"
    write(log, "INFO one", "INFO two", "INFO three")
    review(tmp_path, log)
    inode = log.stat().st_ino

    write(log, "ERROR after truncate", mode="w")  # copytruncate: same inode, shorter
    assert log.stat().st_ino == inode
    [entry] = review(tmp_path, log)
    assert entry["reset"] == "truncated" and counts(entry) == (1, 1, 0)

    # Truncated and written past the old offset before the review: only the first bytes tell.
    write(log, "WARNING rewritten in place, a longer first line than before", "INFO x", "INFO y", mode="w")
    assert log.stat().st_ino == inode
    [entry] = review(tmp_path, log)
    assert entry["reset"] == "replaced" and counts(entry) == (3, 0, 1)


def test_check_mode_reports_but_does_not_move_cursors(tmp_path: Path) -> None:
    log = tmp_path / "wallet.log"
    write(log, "ERROR a", "INFO b")
    result = review_logs(
        {"sources": [{"service": "w", "path": str(log)}], "cursor_dir": str(tmp_path / "cursors")},
        check_mode=True,
    )
    assert result["changed"] and counts(result["reviews"][0]) == (2, 1, 0)
    assert not (tmp_path / "cursors").exists()

    review(tmp_path, log)  # a real review moves the cursor
    cursor_files = sorted((tmp_path / "cursors").iterdir())
    saved = [p.read_bytes() for p in cursor_files]
    write(log, "ERROR c")
    [entry] = review(tmp_path, log, check=True)
    assert counts(entry) == (1, 1, 0) and entry["cursor_moved"]
    assert [p.read_bytes() for p in sorted((tmp_path / "cursors").iterdir())] == saved
    [entry] = review(tmp_path, log, check=True)  # still there for the next real review
    assert counts(entry) == (1, 1, 0)


def test_cursor_files_are_whole_json_without_temp_leftovers(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write(log, "INFO a")
    review(tmp_path, log)
    [cursor] = list((tmp_path / "cursors").iterdir())
    data = json.loads(cursor.read_text())
    assert data["inode"] == log.stat().st_ino and data["offset"] == log.stat().st_size
    assert cursor.name.startswith("file-a.log-")


def test_max_lines_stops_and_the_next_review_goes_on(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    write(log, *[f"ERROR item {i} failed" for i in range(25)])
    [entry] = review(tmp_path, log, max_lines=10)
    assert counts(entry) == (10, 10, 0) and entry["more"]
    [entry] = review(tmp_path, log, max_lines=10)
    assert counts(entry) == (10, 10, 0) and entry["more"]
    [entry] = review(tmp_path, log, max_lines=10)
    assert counts(entry) == (5, 5, 0) and not entry["more"]
    assert entry["signatures"][0]["count"] == 5


def test_a_missing_file_is_reported_per_source(tmp_path: Path) -> None:
    log = tmp_path / "ok.log"
    write(log, "ERROR x")
    result = review_logs(
        {
            "sources": [
                {"service": "gone", "path": str(tmp_path / "gone.log")},
                {"service": "ok", "path": str(log)},
            ],
            "cursor_dir": str(tmp_path / "cursors"),
        }
    )
    gone, ok = result["reviews"]
    assert gone["error"] == f"log file not found: {tmp_path / 'gone.log'}" and not gone["cursor_moved"]
    assert ok["error"] is None and ok["errors"] == 1
    assert result["msg"].endswith("not reviewed: gone")


def test_a_cursor_that_cannot_be_saved_is_reported_per_source(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write(log, "INFO a")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # even root cannot create a directory below a file
    result = review_logs({"sources": [{"service": "a", "path": str(log)}], "cursor_dir": str(blocker / "c")})
    [entry] = result["reviews"]
    assert entry["error"].startswith(f"cannot review {log}: Not a directory")
    assert result["msg"].endswith("not reviewed: a")


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    log = str(tmp_path / "a.log")
    with pytest.raises(LogReviewError, match=r"patterns.error: invalid regular expression '\(unclosed'"):
        review_logs({"sources": [], "patterns": {"error": ["(unclosed"]}})
    with pytest.raises(LogReviewError, match="a: give exactly one of path and journal_unit"):
        review_logs({"sources": [{"service": "a", "path": log, "journal_unit": "a.service"}]})
    with pytest.raises(LogReviewError, match="is listed twice"):
        review_logs({"sources": [{"service": "a", "path": log}, {"service": "b", "path": log}]})


# ------------------------------------------------------------------------------------------ journal


def test_journal_source_without_journalctl_is_a_per_source_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    [entry] = review_logs(
        {"sources": [{"service": "node", "journal_unit": "node.service"}], "cursor_dir": str(tmp_path / "c")}
    )["reviews"]
    assert entry["error"] == "journalctl not found on this host; cannot read the journal of unit node.service"
    assert entry["new_lines"] == 0 and not entry["cursor_moved"]


@pytest.mark.skipif(shutil.which("journalctl") is None, reason="needs journalctl (Debian package systemd)")
def test_a_journalctl_failure_is_a_per_source_error(tmp_path: Path) -> None:
    # The real journalctl rejects a cursor it cannot parse; the review reports it and keeps the cursor.
    cursor_dir = tmp_path / "c"
    params = {"sources": [{"service": "node", "journal_unit": "node.service"}], "cursor_dir": str(cursor_dir)}
    cfile = Path(cursor_path(str(cursor_dir), "journal", "node.service"))
    cfile.parent.mkdir()
    cfile.write_text(
        json.dumps({"version": 1, "kind": "journal", "unit": "node.service", "cursor": "garbage"})
    )
    result = review_logs(params)
    [entry] = result["reviews"]
    assert entry["error"].startswith("journalctl -u node.service failed (rc=1): Failed to seek to cursor")
    assert str(cfile) in entry["error"] and not result["changed"]


FAKE_JOURNALCTL = """#!/usr/bin/python3
# Stand-in for journalctl -o json: entries from JOURNAL_FILE, honouring --after-cursor.
import json, os, sys
entries = [json.loads(line) for line in open(os.environ["JOURNAL_FILE"])]
args = sys.argv[1:]
if "--after-cursor" in args:
    after = args[args.index("--after-cursor") + 1]
    entries = entries[[e["__CURSOR"] for e in entries].index(after) + 1:]
for e in entries:
    print(json.dumps(e), flush=True)
"""


def test_journal_cursor_resumes_after_the_last_entry_read(tmp_path: Path, monkeypatch) -> None:
    # This machine has no running journald, so a stand-in journalctl serves the entries.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "journalctl").write_text(FAKE_JOURNALCTL)
    (bindir / "journalctl").chmod(0o755)
    journal = tmp_path / "journal.jsonl"

    def add(*messages: str) -> None:
        start = len(journal.read_text().splitlines()) if journal.exists() else 0
        with open(journal, "a") as handle:
            for n, message in enumerate(messages, start):
                entry = {"__CURSOR": f"s=1;i={n}", "__REALTIME_TIMESTAMP": str(1_700_000_000_000_000 + n)}
                handle.write(
                    json.dumps({**entry, "MESSAGE": message, "SYSLOG_IDENTIFIER": "node", "_PID": "7"})
                )
                handle.write("\n")

    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("JOURNAL_FILE", str(journal))
    params = {
        "sources": [{"service": "node", "journal_unit": "node.service"}],
        "cursor_dir": str(tmp_path / "c"),
    }
    add("started", "ERROR block 5 rejected", "WARNING peer slow", "ERROR block 6 rejected")
    [entry] = review_logs({**params, "max_lines": 3})["reviews"]
    assert counts(entry) == (3, 1, 1) and entry["more"] and entry["error"] is None
    assert entry["signatures"][0]["examples"] == ["2023-11-14T22:13:20+0000 node[7]: ERROR block 5 rejected"]
    [entry] = review_logs(params)["reviews"]
    assert counts(entry) == (1, 1, 0) and not entry["more"]
    add("INFO fine")
    [entry] = review_logs(params, check_mode=True)["reviews"]
    assert counts(entry) == (1, 0, 0) and entry["cursor_moved"]
    [entry] = review_logs(params)["reviews"]
    assert counts(entry) == (1, 0, 0)
    [entry] = review_logs(params)["reviews"]
    assert counts(entry) == (0, 0, 0) and not entry["cursor_moved"]


# ------------------------------------------------------------------------------------------ signatures


def test_lines_differing_only_in_variable_parts_share_a_signature() -> None:
    pairs = [
        (
            "2025-05-01 10:00:01,123 ERROR payment id=42 failed after 3 retries: 'timeout' from 10.0.0.5:80",
            "2025-06-12 23:59:59,999 ERROR payment id=77 failed after 5 retries: 'reset' from 10.1.2.3:8",
        ),
        (
            "[2025-05-01T10:00:01Z] ERROR tx 0x1f2e3d hash 9f86d081884c7d659a2feaa0c55ad015",
            "[2025-05-03T11:00:02Z] ERROR tx 0xabc hash 2c26b46b68ffc68ff99b453c1d30413413422d70",
        ),
        (
            "ERROR job 123e4567-e89b-12d3-a456-426614174000 lost in /tmp/pytest-12/run-8/x.log",
            "ERROR job 9b2f1c3e-0000-4d7a-b1c2-0123456789ab lost in /tmp/pytest-13/run-2/x.log",
        ),
        (
            "12345:M 01 Jan 2025 12:00:00.123 # ERROR disk full",
            "99:M 28 Feb 2026 01:02:03.004 # ERROR disk full",
        ),
        ('May  1 10:00:01 ERROR cannot open "/var/a"', 'Jun 30 23:00:00 ERROR cannot open "/srv/b c"'),
    ]
    for first, second in pairs:
        assert normalize(first) == normalize(second), first
        assert signature_id(normalize(first)) == signature_id(normalize(second))
    assert normalize(pairs[0][0]) == "ERROR payment id=<id> failed after <n> retries: '<str>' from <ip>"
    assert normalize("ERROR disk full") != normalize("ERROR disk missing")
    assert normalize("ERROR sha256 mismatch") == "ERROR sha256 mismatch"  # digits inside words stay
    assert len(signature_id("x")) == 12 and signature_id("x") == signature_id("x")


def test_secret_values_never_leave_the_host() -> None:
    error, warning = compile_patterns(None)
    scanner = Scanner(error, warning, 3)
    scanner.feed("ERROR login failed password=hunter2 api_key: 'k-123' Authorization: Bearer abc.def")
    [sig] = scanner.finish()["signatures"]
    assert "hunter2" not in str(sig) and "k-123" not in str(sig) and "abc.def" not in str(sig)
    assert (
        sig["template"]
        == "ERROR login failed password=<secret> api_key: <secret> Authorization: Bearer <secret>"
    )


def test_a_traceback_is_one_error_named_by_its_exception() -> None:
    error, warning = compile_patterns(None)
    scanner = Scanner(error, warning, 2)
    lines = [
        "2025-05-01 10:00:01 ERROR sync failed for block 12",
        "Traceback (most recent call last):",
        '  File "/srv/app/sync.py", line 3, in run',
        "    raise ValueError('bad block 12')",
        "ValueError: bad block 12",
        "Traceback (most recent call last):",
        '  File "/srv/app/cache.py", line 9, in get',
        "KeyError: 'k77'",
        "INFO recovered",
        "2025-05-01 10:00:05 ERROR sync failed for block 13",
    ]
    for line in lines:
        scanner.feed(line)
    result = scanner.finish()
    assert (result["new_lines"], result["errors"], result["warnings"]) == (10, 3, 0)
    templates = {s["template"]: s for s in result["signatures"]}
    assert set(templates) == {
        "ERROR sync failed for block <n> | ValueError: bad block <n>",
        "Traceback (most recent call last): | KeyError: '<str>'",
        "ERROR sync failed for block <n>",
    }
    assert templates["ERROR sync failed for block <n> | ValueError: bad block <n>"]["examples"] == [
        "2025-05-01 10:00:01 ERROR sync failed for block 12\nValueError: bad block 12"
    ]


def test_custom_patterns_and_example_limit(tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    write(log, *[f"panic: worker {i} died" for i in range(5)], "ERROR not an error here", "careful now")
    [entry] = review(
        tmp_path, log, patterns={"error": ["^panic:"], "warning": ["careful"]}, signature_examples=2
    )
    assert counts(entry) == (7, 5, 1)
    [sig] = entry["signatures"]
    assert sig["count"] == 5 and sig["examples"] == ["panic: worker 0 died", "panic: worker 1 died"]


# ------------------------------------------------------------------------------------------ formats


def classify(line: str, level: str | None = None) -> str | None:
    error, warning = compile_patterns(None)
    scanner = Scanner(error, warning, 1)
    scanner.feed(line, level=level)
    result = scanner.finish()
    return "error" if result["errors"] else "warning" if result["warnings"] else None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # nginx's error log
        ("2026/12/04 10:00:00 [error] 123#0: *1 connect() failed (111: Connection refused)", "error"),
        ("2026/12/04 10:00:00 [crit] 123#0: *2 open() failed (13: Permission denied)", "error"),
        ("2026/12/04 10:00:00 [alert] 123#0: worker process 125 exited on signal 9", "error"),
        ('2026/12/04 10:00:00 [emerg] 123#0: unknown directive "foo" in /etc/nginx/nginx.conf:3', "error"),
        ("nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)", "error"),
        (
            "2026/12/04 10:00:00 [warn] 123#0: *3 an upstream response is buffered to a temporary file",
            "warning",
        ),
        ("2026/12/04 10:00:00 [notice] 123#0: signal process started", None),
        ("[Wed Dec 04 10:00:00.000 2026] [proxy:error] [pid 7] AH00940: failed", "error"),  # Apache
        # PostgreSQL
        ('2026-12-04 10:00:00.123 UTC [42] ERROR:  relation "jobs" does not exist', "error"),
        ('2026-12-04 10:00:00.123 UTC [42] FATAL:  password authentication failed for user "x"', "error"),
        ("2026-12-04 10:00:00.123 UTC [42] PANIC:  could not write to file", "error"),
        ("2026-12-04 10:00:00.123 UTC [42] WARNING:  there is no transaction in progress", "warning"),
        ("2026-12-04 10:00:00.123 UTC [42] LOG:  checkpoint starting: time", None),
        # Redis: "#" is its warning level, "*", "-" and "." are notice, verbose and debug
        ("123:M 04 Dec 2026 10:00:00.000 # Warning: no config file specified", "warning"),
        ("123:M 04 Dec 2026 10:00:00.000 # Server initialized", "warning"),
        ("[123] 04 Dec 10:00:00.000 # Server started", "warning"),
        ("123:M 04 Dec 2026 10:00:00.000 * Ready to accept connections tcp", None),
        ("123:S 04 Dec 2026 10:00:00.000 - Accepted 127.0.0.1:5000", None),
        ("123:C 04 Dec 2026 10:00:00.000 . 0 clients connected", None),
        # Python logging, its default format and key=value / JSON renderings
        ("2026-12-04 10:00:00,123 ERROR app.db: connection lost", "error"),
        ("CRITICAL:root:out of memory", "error"),
        ("2026-12-04 10:00:00,123 - app - WARNING - slow query", "warning"),
        ("WARNING:root:careful", "warning"),
        ("ERROR:    Exception in ASGI application", "error"),  # uvicorn
        ("ts=2026-12-04T10:00:00Z levelname=error msg=boom", "error"),
        ("ts=2026-12-04T10:00:00Z level=warn msg=slow", "warning"),
        ('{"time": "2026-12-04T10:00:00Z", "level": "error", "msg": "boom"}', "error"),
        ('{"levelname":"WARNING","message":"slow"}', "warning"),
        ('{"log.level":"fatal","message":"gone"}', "error"),
        ("2026-12-04 10:00:00 [error    ] payment failed", "error"),  # structlog's console renderer
        ("ValueError: bad block 12", "error"),
        ("/srv/app/x.py:3: DeprecationWarning: use y", "warning"),
        # prose and configuration dumps are not levels
        ("processed 12 jobs, 0 errors", None),
        ("    error_log /var/log/nginx/error.log warn;", None),
        ("error_log /var/log/nginx/error.log;", None),
        ("INFO no errors found; last error: none", None),
        ("INFO Error handling enabled, warnings=0", None),
        ("level=errors", None),
        ("INFO retried after a timeout", None),
    ],
)
def test_default_patterns_recognise_the_usual_formats(line: str, expected: str | None) -> None:
    assert classify(line) == expected


@pytest.mark.parametrize(
    ("priority", "expected"),
    [("0", "error"), ("3", "error"), ("4", "warning"), ("5", None), ("6", None), ("x", None)],
)
def test_journal_priority_sets_the_level(priority: str, expected: str | None) -> None:
    assert classify("plain message", journal_level({"PRIORITY": priority})) == expected
    # The patterns can only raise it: an ERROR line at priority 6 (a service's stdout) is an error.
    assert classify("ERROR plain message", journal_level({"PRIORITY": priority})) == "error"


def test_pathological_long_lines_stay_linear() -> None:
    # 64 KiB each; a quadratic regex (over the patterns, the template or the secret masking) takes minutes.
    size = 64 * 1024
    bodies = ["a-" * (size // 2), "[" * size, "level=" * (size // 6), "password-" * (size // 9), " " * size]
    bodies += [
        "a:" * (size // 2),
        "[a" * (size // 2),
        "ab-" * (size // 3),
        "'a " * (size // 3),
        "/a" * (size // 2),
    ]
    error, warning = compile_patterns(None)
    scanner = Scanner(error, warning, 1)
    started = time.monotonic()
    for body in bodies:
        scanner.feed(body)
        scanner.feed("ERROR " + body)
        scanner.feed("[error" + body)
    scanner.finish()
    assert time.monotonic() - started < 5


def test_masking_still_finds_keys_behind_other_keys() -> None:
    assert mask_secrets("a=password=hunter2 x-api-key: k1 user=bob") == (
        "a=password=<secret> x-api-key: <secret> user=bob"
    )
    assert (
        mask_secrets('{"db_password": "p w", "token":\'t\'}') == '{"db_password": <secret>, "token":<secret>}'
    )


def test_a_source_adds_its_own_patterns_to_the_defaults(tmp_path: Path) -> None:
    nginx, other = tmp_path / "nginx.log", tmp_path / "other.log"
    lines = ("2026/12/04 10:00:00 [error] 1#0: boom", "upstream timed out", "slow upstream", "INFO fine")
    write(nginx, *lines)
    write(other, *lines)
    sources = [
        {"service": "nginx", "path": str(nginx), "patterns": {"error": ["timed out$"], "warning": ["^slow"]}},
        {"service": "other", "path": str(other)},
    ]
    result = review_logs({"sources": sources, "cursor_dir": str(tmp_path / "c")})
    assert [counts(r) for r in result["reviews"]] == [(4, 2, 1), (4, 1, 0)]


def test_a_bad_source_pattern_names_the_service_and_the_pattern(tmp_path: Path) -> None:
    sources = [{"service": "nginx", "path": str(tmp_path / "x.log"), "patterns": {"warning": ["[unclosed"]}}]
    with pytest.raises(
        LogReviewError, match=r"^nginx: patterns.warning: invalid regular expression '\[unclosed'"
    ):
        review_logs({"sources": sources, "cursor_dir": str(tmp_path / "c")})
