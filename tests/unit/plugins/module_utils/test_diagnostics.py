"""plugins/module_utils/diagnostics/ against the real /proc: real listening sockets of this process, a
real child process with a pidfile, a real 50 MB log file, the real load, CPU, memory and mounts. Pure
parsers are tested on fixed input; a section failure is provoked for real (a procfs root without files)
and, for the time budget, with a section that sleeps."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils._procs import parse_meminfo
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.base import (
    DEADLINE_GRACE,
    SECTIONS,
    DiagnosticsError,
    systemd_running,
)
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.collect import Collector, collect
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.logs import LOG_LINE_MAX_CHARS, tail_lines
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.restarts import count_restarts, parse_time
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.sockets import (
    decode_address,
    parse_net_table,
)
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.system import (
    parse_cpu_line,
    unescape_mount,
)

FAR = time.monotonic() + 3600  # a deadline that never passes within a test
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def own_comm() -> str:
    return Path("/proc/self/comm").read_text().strip()


# ------------------------------------------------------------------------------------------ sockets


def test_finds_own_listening_tcp_socket_and_its_owner() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        port = server.getsockname()[1]
        result = Collector([{"name": "me", "port": port}]).section_sockets(FAR)
    mine = [s for s in result["listening"] if s["port"] == port]
    assert len(mine) == 1, result["listening"]
    entry = mine[0]
    assert entry["proto"] == "tcp"
    assert entry["address"] == "127.0.0.1"
    assert entry["pid"] == os.getpid()
    assert entry["command"] == own_comm()
    assert entry["service"] == "me"
    assert entry["inode"] > 0
    assert entry["accept_queue"] == 0
    assert result["tcp_states"]["LISTEN"] >= 1
    assert "tcp" in result["tables"]
    assert result["scan"]["processes"] >= 1


def test_accept_queue_counts_connections_not_yet_accepted() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        port = server.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _index in range(3)]
        try:
            result = Collector().section_sockets(FAR)
        finally:
            for client in clients:
                client.close()
    (entry,) = [s for s in result["listening"] if s["port"] == port]
    assert entry["accept_queue"] == 3
    assert result["tcp_states"]["ESTABLISHED"] >= 3


def test_finds_ipv6_and_udp_sockets() -> None:
    if not Path("/proc/net/tcp6").exists():
        pytest.skip("no IPv6 in this network namespace")
    try:
        server6 = socket.socket(socket.AF_INET6)
        server6.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    with server6, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        server6.listen(4)
        udp.bind(("127.0.0.1", 0))
        port6, udp_port = server6.getsockname()[1], udp.getsockname()[1]
        listening = Collector().section_sockets(FAR)["listening"]
    (tcp6,) = [s for s in listening if s["port"] == port6 and s["proto"] == "tcp6"]
    assert tcp6["address"] == "::1" and tcp6["pid"] == os.getpid()
    (udp4,) = [s for s in listening if s["port"] == udp_port and s["proto"] == "udp"]
    assert udp4["address"] == "127.0.0.1" and udp4["pid"] == os.getpid()
    assert "accept_queue" not in udp4


def test_connected_udp_socket_is_not_listening() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.connect(("127.0.0.1", 9))
        port = udp.getsockname()[1]
        listening = Collector().section_sockets(FAR)["listening"]
    assert not [s for s in listening if s["port"] == port]


def test_owner_scan_respects_its_budget() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        owners, scan = Collector()._socket_owners({12345678901}, time.monotonic() - 1)
    assert owners == {}
    assert scan["complete"] is False
    assert scan["stopped"] == "time budget"
    assert scan["processes"] == 0


# ---------------------------------------------------------------------------------------- processes

CHILD = textwrap.dedent(
    """
    import os, socket, subprocess, sys, time
    ballast = b"x" * (48 * 1024 * 1024)          # resident: bytes multiplication writes every page
    files = [open("/dev/null") for _ in range(25)]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    sleeper = subprocess.Popen(["sleep", "120"])
    pidfile, infofile = sys.argv[1], sys.argv[2]
    with open(infofile + ".tmp", "w") as fh:
        fh.write(f"{server.getsockname()[1]} {sleeper.pid}")
    os.rename(infofile + ".tmp", infofile)
    with open(pidfile + ".tmp", "w") as fh:
        fh.write(f"{os.getpid()}\\n")
    os.rename(pidfile + ".tmp", pidfile)
    time.sleep(120)
    """
)


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    pidfile: Path
    port: int
    grandchild: int
    marker: str


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    workdir = tmp_path_factory.mktemp("diag-child")
    pidfile, infofile = workdir / "app.pid", workdir / "app.info"
    marker = f"diag-marker-{os.getpid()}-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(pidfile), str(infofile), marker])
    grandchild = None
    try:
        deadline = time.monotonic() + 20
        while not pidfile.exists():
            assert proc.poll() is None, "child exited"
            assert time.monotonic() < deadline, "child did not write its pidfile"
            time.sleep(0.02)
        port_text, grandchild_text = infofile.read_text().split()
        grandchild = int(grandchild_text)
        yield Child(proc, pidfile, int(port_text), grandchild, marker)
    finally:
        if grandchild:
            with contextlib.suppress(ProcessLookupError):
                os.kill(grandchild, 9)
        proc.kill()
        proc.wait()


def test_process_by_pidfile_with_rss_files_threads_and_children(child: Child) -> None:
    collector = Collector([{"name": "app", "pidfile": str(child.pidfile), "port": child.port}])
    result = collector.section_processes(FAR)
    svc = result["services"]["app"]
    assert svc["found_by"] == "pidfile"
    assert svc["pids"] == [child.proc.pid]
    assert svc["running"] is True
    assert svc["port"] == child.port and svc["port_listening"] is True
    (proc,) = svc["processes"]
    assert proc["pid"] == child.proc.pid
    assert proc["ppid"] == os.getpid()
    assert proc["rss_bytes"] >= 48 * 1024 * 1024
    assert proc["open_files"] >= 25 + 3 + 1
    assert proc["max_open_files"] and proc["max_open_files"] >= proc["open_files"]
    assert proc["threads"] >= 1
    assert proc["state"] in "RS" and proc["state_name"] in ("running", "sleeping")
    assert child.marker in proc["cmdline"]
    assert proc["user"]
    assert ISO.match(proc["started_at"])
    assert 0 <= proc["uptime_s"] < 120
    assert proc["children_count"] == 1
    (sleeper,) = proc["children"]
    assert sleeper["pid"] == child.grandchild
    assert sleeper["command"] == "sleep"
    assert sleeper["rss_bytes"] > 0
    assert result["process_count"] > 2


def test_process_by_name_and_by_port(child: Child) -> None:
    collector = Collector(
        [
            {"name": "by-name", "process": child.marker},
            {"name": "by-port", "port": child.port},
            {"name": "nothing", "process": "no-such-process-" + child.marker[::-1]},
        ]
    )
    services = collector.section_processes(FAR)["services"]
    # the marker is in the child's argv only (this test process looks for it, but is left out)
    assert services["by-name"]["found_by"] == "process"
    assert services["by-name"]["pids"] == [child.proc.pid]
    assert services["by-port"]["found_by"] == "port"
    assert services["by-port"]["pids"] == [child.proc.pid]
    assert services["nothing"]["running"] is False
    assert services["nothing"]["pids"] == []
    assert "no process matches" in services["nothing"]["note"]


def test_stale_and_missing_pidfiles(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / "stale.pid"
    stale.write_text(f"{dead.pid}\n")
    garbage = tmp_path / "garbage.pid"
    garbage.write_text("not a pid\n")
    collector = Collector(
        [
            {"name": "stale", "pidfile": str(stale)},
            {"name": "missing", "pidfile": str(tmp_path / "nope.pid")},
            {"name": "garbage", "pidfile": str(garbage)},
        ]
    )
    services = collector.section_processes(FAR)["services"]
    assert services["stale"]["pids"] == [] and "stale pidfile" in services["stale"]["note"]
    assert "No such file or directory" in services["missing"]["note"]
    assert "holds no pid" in services["garbage"]["note"]


# --------------------------------------------------------------------------------------------- logs


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("diag-logs") / "big.log"
    line_count = 1_000_000
    body = b"".join(
        b"2025-01-01T00:00:00Z INFO request %08d served in 12 ms\n" % i for i in range(line_count)
    )
    path.write_bytes(body)
    assert path.stat().st_size >= 50 * 1000 * 1000
    return path


def test_tail_of_a_50mb_file_is_exact_and_fast(big_log: Path) -> None:
    started = time.perf_counter()
    lines, info = tail_lines(str(big_log), 50)
    elapsed = time.perf_counter() - started
    assert lines == [
        f"2025-01-01T00:00:00Z INFO request {i:08d} served in 12 ms" for i in range(999_950, 1_000_000)
    ]
    assert elapsed < 0.1, f"took {elapsed:.3f} s"
    assert info["size_bytes"] == big_log.stat().st_size
    assert info["truncated"] is False
    assert ISO.match(info["modified_at"])
    # n larger than one read block
    lines, _info = tail_lines(str(big_log), 3000)
    assert len(lines) == 3000 and lines[0].endswith("00997000 served in 12 ms")


def test_tail_edge_cases(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"one\r\ntwo\r\nthree")  # CRLF, no newline at the end
    assert tail_lines(str(path), 2)[0] == ["two", "three"]
    assert tail_lines(str(path), 10)[0] == ["one", "two", "three"]
    assert tail_lines(str(path), 0)[0] == []
    path.write_bytes(b"")
    assert tail_lines(str(path), 5)[0] == []
    path.write_bytes(b"only\n")
    assert tail_lines(str(path), 5)[0] == ["only"]
    path.write_bytes(b"\n\nx\n\n")  # empty lines are lines
    assert tail_lines(str(path), 3)[0] == ["", "x", ""]
    # lines longer than the read block, the boundary in the middle of a line
    long_lines = [bytes([65 + i]) * 100_000 for i in range(5)]
    path.write_bytes(b"\n".join(long_lines) + b"\n")
    lines, info = tail_lines(str(path), 2)
    assert [len(x) for x in lines] == [LOG_LINE_MAX_CHARS] * 2
    assert lines[0].startswith("D") and lines[1].startswith("E") and lines[1].endswith("...")
    # the byte limit: fewer lines than asked, flagged
    lines, info = tail_lines(str(path), 5, max_bytes=250_000)
    assert len(lines) == 2 and info["truncated"] is True
    # invalid UTF-8 does not break the tail
    path.write_bytes(b"ok\n\xff\xfe bad\n")
    assert tail_lines(str(path), 1)[0] == ["\ufffd\ufffd bad"]


def test_logs_section_file_and_journal(
    big_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = Collector(
        [
            {"name": "app", "log_file": str(big_log)},
            {"name": "gone", "log_file": str(tmp_path / "missing.log")},
            {"name": "unit", "journal_unit": "aitbc-diag-test.service"},
            {"name": "none"},
        ],
        log_lines=7,
    )
    out = collector.section_logs(FAR)
    assert out["lines_requested"] == 7
    app = out["services"]["app"]
    assert (
        app["source"] == "file"
        and len(app["lines"]) == 7
        and app["lines"][-1].endswith("00999999 served in 12 ms")
    )
    assert "No such file or directory" in out["services"]["gone"]["error"]
    unit = out["services"]["unit"]
    assert unit["source"] == "journal" and unit["unit"] == "aitbc-diag-test.service"
    assert isinstance(unit["lines"], list)
    if not shutil.which("journalctl"):
        assert unit["note"] == "journalctl not found"
    assert out["services"]["none"]["source"] is None
    # without journalctl on PATH: a note, not a failure
    monkeypatch.setenv("PATH", str(tmp_path))
    unit = collector.section_logs(FAR)["services"]["unit"]
    assert unit["lines"] == [] and unit["note"] == "journalctl not found"


# ------------------------------------------------------------------------------------------ restarts


def test_restarts_from_file(tmp_path: Path) -> None:
    now = time.time()
    path = tmp_path / "restarts.jsonl"
    entries = [
        {"time": now - 7200, "service": "redis"},
        {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)), "service": "redis"},
        {"time": now - 2 * 86400, "service": "redis"},  # too old
        {"time": now - 10, "service": "coordinator"},
        {"time": now - 10, "service": "other"},
    ]
    path.write_text("\n".join(json.dumps(e) for e in entries) + "\nnot json\n{}\n")
    out = Collector([{"name": "redis"}, {"name": "coordinator"}, {"name": "quiet"}], restarts_file=str(path))
    result = out.section_restarts(FAR)
    assert result["source"] == "file" and result["bad_lines"] == 2
    services = result["services"]
    assert services["redis"]["last_24h"] == 2
    assert services["redis"]["last"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    assert services["coordinator"]["last_24h"] == 1
    assert services["quiet"] == {"source": "file", "last_24h": 0, "last": None}


def test_restarts_without_file_or_systemd() -> None:
    result = Collector([{"name": "a"}, {"name": "b", "unit": "b.service"}]).section_restarts(FAR)
    assert result["services"]["a"]["note"] == "no restarts_file and no systemd unit"
    if not systemd_running():
        assert result["services"]["b"]["note"] == "systemd is not running"


def test_count_restarts_and_parse_time() -> None:
    now = 1_700_000_000.0
    counts, bad = count_restarts(
        [
            '{"time": 1699999990, "service": "x"}',
            '{"time": "2023-11-14T22:13:10+00:00", "service": "x"}',
            "[]",
        ],
        ["x", "y"],
        now,
    )
    assert counts["x"]["count"] == 2 and counts["y"]["count"] == 0 and bad == 1
    assert parse_time("2023-11-14T22:13:20Z") == now
    assert parse_time("2023-11-14T22:13:20") == now
    assert parse_time("1700000000") == now
    assert parse_time(True) is None and parse_time("yesterday") is None and parse_time(None) is None


# ------------------------------------------------------------------------------- system sections


def test_system_sections_shapes() -> None:
    result = collect(include=["load", "cpu", "memory", "disk"])
    diag = result["diagnostics"]
    assert diag["sections"] == ["load", "cpu", "memory", "disk"]
    assert result["failed_sections"] == []
    load = diag["load"]
    assert load["cpus"] == os.cpu_count()
    assert load["load1"] >= 0 and load["tasks"] >= load["runnable"] >= 0
    assert load["per_cpu"]["load1"] == round(load["load1"] / load["cpus"], 2)
    cpu = diag["cpu"]
    assert 0 <= cpu["busy_percent"] <= 100 and 0 <= cpu["iowait_percent"] <= 100
    assert 0.15 <= cpu["interval_s"] < 2
    mem = diag["memory"]
    assert mem["total_bytes"] > mem["available_bytes"] > 0
    assert mem["used_bytes"] == mem["total_bytes"] - mem["available_bytes"]
    assert 0 < mem["used_percent"] < 100
    assert mem["swap_used_bytes"] <= mem["swap_total_bytes"]
    mounts = {m["mount"]: m for m in diag["disk"]["mounts"]}
    assert "/" in mounts
    root = mounts["/"]
    st = os.statvfs("/")
    assert root["size_bytes"] == st.f_blocks * st.f_frsize
    assert 0 < root["used_percent"] < 100 and root["free_bytes"] > 0
    assert not any(
        m["fstype"] in ("proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue") for m in mounts.values()
    )
    assert not any(m.startswith(("/proc", "/sys")) for m in mounts)
    assert len(mounts) == len(diag["disk"]["mounts"])  # each mount point once
    assert set(diag["timings_ms"]) == set(diag["sections"])
    assert diag["duration_s"] < 2
    summary = result["summary"]
    for word in ("load:", "cpu:", "memory:", "disk:", " / ("):
        assert word in summary


def test_full_collection_and_summary(child: Child, big_log: Path) -> None:
    services = [
        {"name": "app", "pidfile": str(child.pidfile), "port": child.port, "log_file": str(big_log)},
    ]
    started = time.monotonic()
    result = collect(services=services, log_lines=5)
    elapsed = time.monotonic() - started
    diag = result["diagnostics"]
    assert diag["sections"] == list(SECTIONS)
    assert result["failed_sections"] == [], result["msg"]
    assert elapsed < 3
    assert diag["processes"]["services"]["app"]["pids"] == [child.proc.pid]
    (sock,) = [s for s in diag["sockets"]["listening"] if s["port"] == child.port]
    assert sock["pid"] == child.proc.pid and sock["service"] == "app"
    summary = result["summary"]
    assert summary.splitlines()[0].startswith("diagnostics of ")
    assert f"127.0.0.1:{child.port} python" in summary
    assert f"pid {child.proc.pid} python" in summary
    assert "00999999 served in 12 ms" in summary
    assert result["msg"].startswith("collected 8 section(s) in ")


# ---------------------------------------------------------------------------------------- failures


def test_section_failures_are_contained(tmp_path: Path, big_log: Path) -> None:
    """A procfs root with nothing in it: every /proc section fails with its own error, the rest works."""
    empty = tmp_path / "proc"
    empty.mkdir()
    result = collect(services=[{"name": "app", "log_file": str(big_log)}], log_lines=2, proc=str(empty))
    diag = result["diagnostics"]
    for name in ("load", "cpu", "memory", "disk", "sockets", "processes"):
        assert set(diag[name]) == {"error"}, (name, diag[name])
        assert "No such file or directory" in diag[name]["error"]
    assert diag["logs"]["services"]["app"]["lines"][-1].endswith("00999999 served in 12 ms")
    assert "error" not in diag["restarts"]
    assert result["failed_sections"] == ["load", "cpu", "memory", "disk", "sockets", "processes"]
    assert "failed: load (No such file or directory:" in result["msg"]
    assert "load: ERROR: No such file or directory" in result["summary"]


def test_a_hung_section_times_out_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(self: Collector, deadline: float) -> dict:
        time.sleep(5)
        return {}

    def raises(self: Collector, deadline: float) -> dict:
        raise RuntimeError("boom")

    monkeypatch.setattr(Collector, "section_disk", hang)
    monkeypatch.setattr(Collector, "section_memory", raises)
    started = time.monotonic()
    result = collect(include=["load", "memory", "disk"], section_timeout=0.3)
    elapsed = time.monotonic() - started
    assert elapsed < 0.3 + DEADLINE_GRACE + 0.3
    diag = result["diagnostics"]
    assert diag["disk"] == {"error": "timed out after 0.3 s"}
    assert diag["memory"] == {"error": "boom"}
    assert "load1" in diag["load"]
    assert result["failed_sections"] == ["memory", "disk"]


def test_cooperative_deadline_inside_a_section() -> None:
    collector = Collector([{"name": "x", "process": "anything"}])
    with pytest.raises(TimeoutError):
        collector.section_processes(time.monotonic() - 1)


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"services": [{"name": "a"}, {"name": "a"}]}, "duplicate service name 'a'"),
        ({"services": [{"pidfile": "/x"}]}, "services[1]: name is required"),
        ({"services": [{"name": "a", "port": 70000}]}, "port must be between 1 and 65535"),
        ({"services": [{"name": "a", "color": "red"}]}, "unknown option(s) color"),
        ({"include": ["load", "gpu"]}, "include: unknown section(s) gpu"),
        ({"log_lines": -1}, "log_lines must be between 0 and 10000"),
        ({"section_timeout": 0}, "section_timeout must be a positive number"),
    ],
)
def test_bad_input_is_one_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(DiagnosticsError) as info:
        collect(**kwargs)
    assert message in str(info.value)


def test_include_keeps_a_fixed_order_without_duplicates() -> None:
    result = collect(include=["memory", "load", "memory"])
    assert result["diagnostics"]["sections"] == ["load", "memory"]
    assert "cpu" not in result["diagnostics"]


# ---------------------------------------------------------------------------------- pure parsers


def test_decode_address() -> None:
    assert decode_address("0100007F:1F90") == ("127.0.0.1", 8080)
    assert decode_address("00000000:0016") == ("0.0.0.0", 22)
    assert decode_address("00000000000000000000000001000000:0050") == ("::1", 80)
    assert decode_address("0000000000000000FFFF00000100007F:18EB") == ("::ffff:127.0.0.1", 6379)


def test_parse_net_table() -> None:
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:18EB 00000000:0000 0A 00000000:00000002 00:00000000 00000000   100        0 4242 1\n"
        "   1: 0100007F:18EB 0100007F:D431 01 00000000:00000000 00:00000000 00000000   100        0 4243 1\n"
        "   2: 0100007F:18EB 0100007F:D432 08 00000000:00000000 00:00000000 00000000   100        0 0 1\n"
    )
    listening, counts = parse_net_table(text, "tcp")
    assert listening == [
        {"proto": "tcp", "address": "127.0.0.1", "port": 6379, "inode": 4242, "uid": 100, "accept_queue": 2}
    ]
    assert counts == {"LISTEN": 1, "ESTABLISHED": 1, "CLOSE_WAIT": 1}
    udp = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "  5: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 77 2\n"
        "  6: 0100007F:9C40 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 78 2\n"
    )
    listening, counts = parse_net_table(udp, "udp")
    assert [(s["port"], s["inode"]) for s in listening] == [(68, 77)]
    assert counts == {}


def test_parse_meminfo_cpu_and_mounts() -> None:
    mem = parse_meminfo("MemTotal:       16000 kB\nMemAvailable:    4000 kB\nHugePages_Total:       0\n")
    assert mem == {"MemTotal": 16_384_000, "MemAvailable": 4_096_000, "HugePages_Total": 0}
    assert parse_cpu_line("cpu  10 0 5 80 3 1 1 0 0 0\ncpu0 1 2 3 4\n") == (17, 3, 0, 100)
    assert parse_cpu_line("cpu  10 0 5 85\n") == (15, 0, 0, 100)
    with pytest.raises(ValueError):
        parse_cpu_line("intr 1 2 3\n")
    assert unescape_mount("/mnt/my\\040disk") == "/mnt/my disk"
    assert unescape_mount("/plain") == "/plain"
