"""plugins/module_utils/probes/security.py against the real host: sockets this test binds (and the real
/proc/net/tcp), files it chmods, and auth logs it writes."""

from __future__ import annotations

import datetime
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import ProbeConfigError
from ansible_collections.aitbc.ops.plugins.module_utils.probes.registry import check_health
from ansible_collections.aitbc.ops.plugins.module_utils.probes.security import (
    TAIL_BYTES,
    line_time,
    parse_proc_net_tcp,
    read_listeners,
)


def run_one(spec: dict) -> dict:
    return check_health([spec])["results"][0]


# ------------------------------------------------------------------------------------------ listeners


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP socket listening on 0.0.0.0 at a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))  # noqa: S104 - the probe looks for sockets reachable from outside
        sock.listen(1)
        yield sock


def outside_ports() -> set[int]:
    """The ports listening right now on a non-loopback address (other programs of this machine)."""
    return {item.port for item in read_listeners() if not item.loopback}


def unexpected_ports(result: dict) -> set[int]:
    return {entry["port"] for entry in result["data"]["unexpected"]}


def test_a_listener_on_a_port_not_allowed_fails_naming_port_address_and_process(listener) -> None:
    port = listener.getsockname()[1]
    result = run_one({"type": "listeners", "allowed_ports": [22]})
    assert result["ok"] is False
    assert result["category"] == "security"
    assert f"0.0.0.0:{port} (pid {os.getpid()} " in result["detail"] or "more" in result["detail"]
    entry = next(e for e in result["data"]["unexpected"] if e["port"] == port)
    assert entry == {"address": "0.0.0.0", "port": port, "pid": os.getpid(), "process": entry["process"]}
    with open(f"/proc/{os.getpid()}/comm", encoding="utf-8") as handle:
        assert entry["process"] == handle.read().strip()


def test_an_allowed_port_passes(listener) -> None:
    port = listener.getsockname()[1]
    before = outside_ports()
    assert port in before
    result = run_one({"type": "listeners", "allowed_ports": sorted(before)})
    assert port not in unexpected_ports(result)
    # Healthy unless another program started listening meanwhile (the machine is shared with other tests).
    assert result["ok"] or unexpected_ports(result).isdisjoint(before), result
    if result["ok"]:
        assert "listening sockets, none reachable from outside on a port not allowed (" in result["detail"]
        assert result["category"] == "security"


def test_loopback_listeners_count_only_with_include_loopback() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        assert port not in unexpected_ports(run_one({"type": "listeners"}))
        counted = run_one({"type": "listeners", "include_loopback": True})
        assert port in unexpected_ports(counted)
        assert f"127.0.0.1:{port} (pid {os.getpid()}" in counted["detail"] or "more" in counted["detail"]


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 in this Python")
def test_an_ipv6_wildcard_listener_is_found() -> None:
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(("::", 0))
    except OSError as exc:
        pytest.skip(f"cannot bind [::]: {exc}")
    with sock:
        sock.listen(1)
        port = sock.getsockname()[1]
        result = run_one({"type": "listeners", "allowed_ports": [22]})
        entry = next(e for e in result["data"]["unexpected"] if e["port"] == port)
        assert entry["address"] == "::" and entry["pid"] == os.getpid()
        assert port not in unexpected_ports(run_one({"type": "listeners", "allowed_ports": [port]}))


def test_proc_net_tcp_lines_are_parsed_for_listening_sockets_only() -> None:
    v4 = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:9297 00000000:0000 0A 00000000:00000000 00:00000000 00000000 33 0 3161873 1\n"
        "   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1081 1\n"
        "   2: 0100007F:D7D1 0100007F:96D4 06 00000000:00000000 03:000010EE 00000000 0 0 0 3\n"
        "   3: garbage\n"
    )
    found = parse_proc_net_tcp(v4)
    if socket.htonl(1) != 1:  # the words are host-order: this sample is from a little-endian machine
        assert [(f.address, f.port, f.inode, f.loopback) for f in found] == [
            ("127.0.0.1", 0x9297, 3161873, True),
            ("0.0.0.0", 2024, 1081, False),
        ]
    v6 = (
        "  sl  local_address                         remote_address                        st ...\n"
        "   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000     0        0 2222 1\n"
        "   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000     0        0 3333 1\n"
    )
    six = parse_proc_net_tcp(v6, v6=True)
    assert [(f.address, f.port, f.endpoint) for f in six][0] == ("::", 22, "[::]:22")
    if socket.htonl(1) != 1:
        assert (six[1].address, six[1].port, six[1].loopback) == ("::1", 8080, True)


def test_listeners_options_are_checked() -> None:
    with pytest.raises(ProbeConfigError, match="allowed_ports: 70000 is not between 1 and 65535"):
        check_health([{"type": "listeners", "allowed_ports": [22, 70000]}])


# ------------------------------------------------------------------------------------------ file_mode


def test_a_key_file_open_to_group_or_others_fails_naming_path_and_mode(tmp_path: Path) -> None:
    key = tmp_path / "wallet.key"
    key.write_text("secret")
    key.chmod(0o644)
    result = run_one({"type": "file_mode", "paths": [str(key)]})
    assert result["ok"] is False and result["category"] == "security"
    assert result["detail"] == f"key material open to group or others (max 0600): {key} is 0644"
    assert result["data"]["too_open"] == [{"path": str(key), "mode": "0644"}]
    key.chmod(0o600)
    result = run_one({"type": "file_mode", "paths": [str(key)]})
    assert result["ok"] is True, result
    assert result["detail"] == "1 entries private (0600 or narrower)"
    key.chmod(0o400)
    assert run_one({"type": "file_mode", "paths": [str(key)]})["ok"] is True


def test_a_keystore_folder_is_checked_with_everything_in_it(tmp_path: Path) -> None:
    keystore = tmp_path / "keystore"
    (keystore / "sub").mkdir(parents=True)
    keystore.chmod(0o700)
    (keystore / "sub").chmod(0o700)
    for name in ("a.json", "sub/b.json"):
        (keystore / name).write_text("{}")
        (keystore / name).chmod(0o600)
    outside = tmp_path / "public.txt"
    outside.write_text("not a key")
    outside.chmod(0o644)
    (keystore / "link").symlink_to(outside)  # not followed: the link is not key material
    result = run_one({"type": "file_mode", "paths": [str(keystore)]})
    assert result["ok"] is True, result
    assert result["data"]["checked"] == 4  # the folder, sub, a.json, sub/b.json
    (keystore / "sub" / "b.json").chmod(0o640)
    keystore.chmod(0o755)
    result = run_one({"type": "file_mode", "paths": [str(keystore)]})
    assert result["ok"] is False
    assert f"{keystore} is 0755" in result["detail"] and f"{keystore}/sub/b.json is 0640" in result["detail"]


def test_a_missing_key_file_passes_unless_required(tmp_path: Path) -> None:
    missing = str(tmp_path / "backup.key")
    result = run_one({"type": "file_mode", "paths": [missing]})
    assert result["ok"] is True and result["data"]["missing"] == [missing]
    assert result["detail"] == "0 entries private (0600 or narrower) (1 of 1 paths absent)"
    required = run_one({"type": "file_mode", "paths": [missing], "required": True})
    assert required["ok"] is False and f"missing: {missing}" in required["detail"]
    assert run_one({"type": "file_mode"})["detail"] == "no key files to check"


# ------------------------------------------------------------------------------------------ auth_failures


def classic(stamp: float, text: str) -> str:
    """A classic syslog line: ``Dec  4 22:59:50 host prog: text`` in local time."""
    return time.strftime("%b %e %H:%M:%S", time.localtime(stamp)) + f" host1 {text}\n"


def rfc3339(stamp: float, text: str) -> str:
    iso = datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC).isoformat()
    return f"{iso} host1 {text}\n"


FAILED = "sshd[4242]: Failed password for root from 203.0.113.9 port 52311 ssh2"
INVALID = "sshd[4243]: Invalid user admin from 198.51.100.7 port 40022"
PAM = "sshd[4244]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh rhost=192.0.2.1"
NOISE = (
    "sshd[1]: Accepted publickey for ops from 10.0.0.2 port 1 ssh2",
    "sudo: pam_unix(sudo:auth): authentication failure; logname=ops uid=1000",  # not sshd
    "CRON[7]: pam_unix(cron:session): session opened for user root",
)


def write_log(path: Path, lines: list[str]) -> str:
    path.write_text("".join(lines))
    return str(path)


@pytest.mark.parametrize("form", [classic, rfc3339], ids=["classic", "rfc3339"])
def test_a_burst_of_failed_ssh_logins_within_the_window_fails(tmp_path: Path, form) -> None:
    now = time.time()
    old = [form(now - 3600 - i, FAILED) for i in range(30)]  # an hour ago: outside a 600 s window
    fresh = [form(now - 30 - i, (FAILED, INVALID, PAM)[i % 3]) for i in range(30)]
    noise = [form(now - 5, text) for text in NOISE]
    log = write_log(tmp_path / "auth.log", old + fresh + noise)
    result = run_one({"type": "auth_failures", "path": log})
    assert result["ok"] is False and result["category"] == "security"
    assert result["detail"].startswith("30 failed SSH logins in the last 600 s, most from ")
    assert result["detail"].endswith(", maximum 20")
    assert result["data"]["failures"] == 30
    assert result["data"]["sources"] == {"203.0.113.9": 10, "198.51.100.7": 10, "192.0.2.1": 10}
    assert run_one({"type": "auth_failures", "path": log, "max_failures": 30})["ok"] is True
    # A window that reaches back an hour and more counts the old ones too.
    assert run_one({"type": "auth_failures", "path": log, "window": 7200, "max_failures": 59})["ok"] is False


def test_only_old_failures_pass(tmp_path: Path) -> None:
    now = time.time()
    lines = [classic(now - 1200 - i, FAILED) for i in range(30)] + [rfc3339(now - 900, FAILED)]
    result = run_one({"type": "auth_failures", "path": write_log(tmp_path / "auth.log", lines)})
    assert result["ok"] is True and result["detail"] == "0 failed SSH logins in the last 600 s"


def test_a_missing_auth_log_passes(tmp_path: Path) -> None:
    result = run_one({"type": "auth_failures", "path": str(tmp_path / "auth.log")})
    assert result["ok"] is True and result["detail"].startswith("no auth log")
    assert result["category"] == "security"


def test_a_5_mb_log_is_read_only_at_its_tail_in_bounded_time(tmp_path: Path) -> None:
    now = time.time()
    head = [classic(now - 10, FAILED)] * 40  # fresh, but more than a MiB before the end: not read
    filler = classic(now - 86400, "kernel: [1.0] " + "x" * 200)
    body = [filler] * (5 * 1024 * 1024 // len(filler))
    tail = [rfc3339(now - 10, FAILED)] * 25
    log = write_log(tmp_path / "auth.log", head + body + tail)
    assert os.path.getsize(log) > 5 * 1024 * 1024
    start = time.monotonic()
    result = run_one({"type": "auth_failures", "path": log})
    assert time.monotonic() - start < 2.0
    assert result["data"]["failures"] == 25 and result["data"]["bytes_read"] <= TAIL_BYTES
    assert result["ok"] is False


def test_syslog_timestamps_both_forms() -> None:
    now = time.mktime((2026, 1, 1, 0, 5, 0, 0, 0, -1))
    # December's line read in January belongs to the year before.
    assert line_time("Dec 31 23:59:00 h sshd[1]: x", now) == time.mktime((2025, 12, 31, 23, 59, 0, 0, 0, -1))
    assert line_time("Jan  1 00:04:00 h sshd[1]: x", now) == now - 60
    assert (
        line_time("2026-01-01T00:04:00Z h sshd[1]: x", 0)
        == datetime.datetime(2026, 1, 1, 0, 4, tzinfo=datetime.UTC).timestamp()
    )
    assert (
        line_time("2026-01-01T01:04:00.123+0100 h x", 0)
        == datetime.datetime(2026, 1, 1, 0, 4, 0, 123000, tzinfo=datetime.UTC).timestamp()
    )
    assert line_time("Foo  1 00:04:00 h x", now) is None
    assert line_time("no stamp here", now) is None


def test_auth_failures_options_are_checked() -> None:
    with pytest.raises(ProbeConfigError, match="window must be greater than 0"):
        check_health([{"type": "auth_failures", "window": 0}])
    spec = check_health([{"type": "auth_failures", "path": "/nonexistent/auth.log"}])["results"][0]
    assert spec["name"] == "auth_failures:/nonexistent/auth.log" and spec["target"] == "/nonexistent/auth.log"
