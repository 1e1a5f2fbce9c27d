# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure functions of plugins/module_utils/probes.py: sizes, JSON conditions, memory and load thresholds,
probe validation and the summary."""

from __future__ import annotations

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils import probes


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1024, 1024), (1.6, 2), ("512", 512), ("1K", 1024), ("5 GB", 5 * 1024**3), ("1.5MiB", 1572864)],
)
def test_parse_bytes(value, expected):
    assert probes.parse_bytes(value) == expected


@pytest.mark.parametrize("value", [True, "lots", "5 XB", ""])
def test_parse_bytes_rejects(value):
    with pytest.raises(ValueError):
        probes.parse_bytes(value)


def test_human_bytes():
    assert probes.human_bytes(512) == "512 B"
    assert probes.human_bytes(1536) == "1.5 KiB"
    assert probes.human_bytes(3 * 1024**3) == "3.0 GiB"


DOC = {"status": "ok", "height": 120, "synced": True, "peers": ["a", "b"], "meta": {"lag": None}}


@pytest.mark.parametrize(
    ("text", "ok", "message"),
    [
        ("status == ok", True, "status == ok"),
        ("status != ok", False, "json field status is 'ok', expected anything but 'ok'"),
        ("height >= 100", True, "height >= 100"),
        ("height < 100", False, "json field height is 120, expected < 100"),
        ("synced == true", True, "synced == true"),
        ("peers contains b", True, "peers contains b"),
        ("peers.0 == a", True, "peers.0 == a"),
        ("meta.lag == null", True, "meta.lag == null"),
        ("meta.lag exists", True, "meta.lag exists"),
        ("meta.gone exists", False, "json field meta.gone is missing"),
        ("height == '120'", False, "json field height is 120, expected '120'"),
        ("status > 1", False, "json field status is 'ok', not a number (condition status > 1)"),
    ],
)
def test_conditions(text, ok, message):
    assert probes.evaluate_condition(probes.parse_condition(text), DOC) == (ok, message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty json condition"),
        ("status", "cannot parse json condition 'status'"),
        ("height > many", "> needs a number, got 'many'"),
        ("status exists yes", "exists takes no value"),
    ],
)
def test_bad_conditions(text, message):
    with pytest.raises(ValueError, match=message):
        probes.parse_condition(text)


MEMINFO = """\
MemTotal:       8000000 kB
MemFree:         100000 kB
MemAvailable:   2000000 kB
HugePages_Total: 0
"""


def test_memory_threshold():
    info = probes.parse_meminfo(MEMINFO)
    assert info["MemTotal"] == 8000000 * 1024
    assert info["HugePages_Total"] == 0
    ok, detail, data = probes.check_memory(info, 20)
    assert ok
    assert detail.startswith("25.0% available")
    assert data["available_percent"] == 25.0
    ok, detail, _data = probes.check_memory(info, 30)
    assert not ok
    assert detail.endswith("minimum 30%")
    with pytest.raises(probes.ProbeError):
        probes.check_memory({}, 10)


def test_load_threshold():
    ok, detail, data = probes.check_load((2.0, 1.0, 0.5), 4, 1.0)
    assert ok
    assert data["load_per_cpu"] == 0.5
    assert detail == "load 0.50 per cpu (2.00 1.00 0.50 on 4 cpus)"
    ok, detail, _data = probes.check_load((6.0, 1.0, 0.5), 4, 1.0)
    assert not ok
    assert detail.endswith(", maximum 1")
    assert probes.check_load((1.0, 1.0, 1.0), None, 2.0)[2]["cpus"] == 1


def test_build_probe_validates():
    probe = probes.build_probe({"type": "tcp", "name": "sshd", "host": "127.0.0.1", "port": "22"})
    assert (probe.name, probe.params["port"]) == ("sshd", 22)
    with pytest.raises(probes.ProbeConfigError, match="unknown probe type 'ftp'"):
        probes.build_probe({"type": "ftp"})
    with pytest.raises(probes.ProbeConfigError, match="option port is required for tcp probes"):
        probes.build_probe({"type": "tcp", "host": "127.0.0.1"})
    with pytest.raises(probes.ProbeConfigError, match="timeout must be greater than 0"):
        probes.build_probe({"type": "memory", "min_available_percent": 5, "timeout": 0})


def test_build_probes_wants_unique_names():
    spec = {"type": "memory", "name": "mem", "min_available_percent": 5}
    assert len(probes.build_probes([spec])) == 1
    with pytest.raises(probes.ProbeConfigError, match="name 'mem' is already used by probe 1"):
        probes.build_probes([spec, dict(spec)])
    with pytest.raises(probes.ProbeConfigError, match="non-empty list"):
        probes.build_probes([])


def test_summarize():
    results = [
        {"name": "api", "ok": True, "detail": "200 OK"},
        {"name": "redis", "ok": False, "detail": "connection refused"},
    ]
    assert probes.summarize(results) == {
        "healthy": False,
        "failed_probes": ["redis"],
        "msg": "1 of 2 probes failed: redis (connection refused)",
    }
    assert probes.summarize(results[:1])["msg"] == "all 1 probes healthy"
