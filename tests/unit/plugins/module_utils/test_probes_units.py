# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure functions of plugins/module_utils/probes/: the registry and its merged argument_spec, probe
validation, JSON conditions, memory and load thresholds, the summary, and the sizes they read and show."""

from __future__ import annotations

import os

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils._procs import parse_meminfo
from ansible_collections.aitbc.ops.plugins.module_utils._text import human_bytes, parse_bytes
from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import Probe, ProbeConfigError, ProbeError
from ansible_collections.aitbc.ops.plugins.module_utils.probes.conditions import (
    evaluate_condition,
    parse_condition,
)
from ansible_collections.aitbc.ops.plugins.module_utils.probes.host import check_load, check_memory
from ansible_collections.aitbc.ops.plugins.module_utils.probes.registry import (
    PROBE_TYPES,
    argument_spec,
    build_probe,
    build_probes,
    check_health,
    summarize,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1024, 1024), (1.6, 2), ("512", 512), ("1K", 1024), ("5 GB", 5 * 1024**3), ("1.5MiB", 1572864)],
)
def test_parse_bytes(value, expected):
    assert parse_bytes(value) == expected


@pytest.mark.parametrize("value", [True, "lots", "5 XB", ""])
def test_parse_bytes_rejects(value):
    with pytest.raises(ValueError):
        parse_bytes(value)


def test_human_bytes():
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024**3) == "3.0 GiB"


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
    assert evaluate_condition(parse_condition(text), DOC) == (ok, message)


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
        parse_condition(text)


MEMINFO = """\
MemTotal:       8000000 kB
MemFree:         100000 kB
MemAvailable:   2000000 kB
HugePages_Total: 0
"""


def test_memory_threshold():
    info = parse_meminfo(MEMINFO)
    assert info["MemTotal"] == 8000000 * 1024
    assert info["HugePages_Total"] == 0
    ok, detail, data = check_memory(info, 20)
    assert ok
    assert detail.startswith("25.0% available")
    assert data["available_percent"] == 25.0
    ok, detail, _data = check_memory(info, 30)
    assert not ok
    assert detail.endswith("minimum 30%")
    with pytest.raises(ProbeError):
        check_memory({}, 10)


def test_load_threshold():
    ok, detail, data = check_load((2.0, 1.0, 0.5), 4, 1.0)
    assert ok
    assert data["load_per_cpu"] == 0.5
    assert detail == "load 0.50 per cpu (2.00 1.00 0.50 on 4 cpus)"
    ok, detail, _data = check_load((6.0, 1.0, 0.5), 4, 1.0)
    assert not ok
    assert detail.endswith(", maximum 1")
    assert check_load((1.0, 1.0, 1.0), None, 2.0)[2]["cpus"] == 1


def test_build_probe_validates():
    probe = build_probe({"type": "tcp", "name": "sshd", "host": "127.0.0.1", "port": "22"})
    assert (probe.name, probe.params["port"]) == ("sshd", 22)
    with pytest.raises(ProbeConfigError, match="unknown probe type 'ftp'"):
        build_probe({"type": "ftp"})
    with pytest.raises(ProbeConfigError, match="option port is required for tcp probes"):
        build_probe({"type": "tcp", "host": "127.0.0.1"})
    with pytest.raises(ProbeConfigError, match="timeout must be greater than 0"):
        build_probe({"type": "memory", "min_available_percent": 5, "timeout": 0})


def test_build_probes_wants_unique_names():
    spec = {"type": "memory", "name": "mem", "min_available_percent": 5}
    assert len(build_probes([spec])) == 1
    with pytest.raises(ProbeConfigError, match="name 'mem' is already used by probe 1"):
        build_probes([spec, dict(spec)])
    with pytest.raises(ProbeConfigError, match="non-empty list"):
        build_probes([])


def test_summarize():
    results = [
        {"name": "api", "ok": True, "detail": "200 OK"},
        {"name": "redis", "ok": False, "detail": "connection refused"},
    ]
    assert summarize(results) == {
        "healthy": False,
        "failed_probes": ["redis"],
        "msg": "1 of 2 probes failed: redis (connection refused)",
    }
    assert summarize(results[:1])["msg"] == "all 1 probes healthy"


HEALTH_DOC = {
    "status": "ok",
    "supported_chains": ["ait-devnet", "ait-testnet"],
    "height": 42,
    "ready": True,
    "peers": None,
    "version": "1.4.2",
    "node": {"sync": {"behind": 0, "mode": "full"}},
    "validators": [{"name": "v1", "power": 10}, {"name": "v2", "power": 0}],
}


# ------------------------------------------------------------------------------------------ registry


def test_registry_has_every_type_and_one_merged_argument_spec() -> None:
    assert set(PROBE_TYPES) == {
        "http",
        "tcp",
        "redis",
        "process",
        "disk",
        "memory",
        "load",
        "backup",
        "service",
        "metric",
        "listeners",
        "file_mode",
        "auth_failures",
    }
    spec = argument_spec()
    for cls in PROBE_TYPES.values():
        assert set(cls.options) <= set(spec)
    assert {"type", "name", "service", "timeout"} <= set(spec)
    # Defaults shared by every type that has the option are in the merged spec; others are per type.
    assert spec["timeout"]["default"] == 5.0
    assert spec["host"]["default"] == "127.0.0.1"
    assert spec["status"]["default"] == [200]
    assert "default" not in spec["port"]  # tcp: required, redis: 6379
    assert "default" not in spec["path"]  # disk: /, auth_failures: /var/log/auth.log
    assert spec["password"]["no_log"] is True
    assert not any(option.get("required") for option in spec.values())


def test_adding_a_type_touches_only_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    class EchoProbe(Probe):
        type_name = "echo"
        options = {"say": {"type": "str", "required": True}}

        def run(self, deadline: float) -> tuple[bool, str, dict]:
            return True, self.params["say"], {}

    monkeypatch.setitem(PROBE_TYPES, "echo", EchoProbe)
    report = check_health([{"type": "echo", "say": "hi", "service": "demo"}])
    assert report["results"][0] == {
        "name": "echo", "type": "echo", "service": "demo", "target": "", "ok": True, "detail": "hi",
        "latency_ms": report["results"][0]["latency_ms"], "data": {}, "category": "ops",
    }  # fmt: skip
    assert "say" in argument_spec()


# ---------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([], "probes must be a non-empty list"),
        ([{"port": 80}], "probe 1 (no type): type is required (one of: auth_failures, backup, disk,"),
        ([{"type": "tcp", "port": 1}, {"type": "ftp", "name": "files"}],
         "probe 2 (files): unknown probe type 'ftp' "
         "(known types: auth_failures, backup, disk, file_mode, http, listeners, load, memory, metric, "
         "process, redis, service, tcp)"),
        ([{"type": "tcp"}], "probe 1 (tcp): option port is required for tcp probes"),
        ([{"type": "tcp", "port": 70000}], "probe 1 (tcp): port 70000 is not between 1 and 65535"),
        ([{"type": "tcp", "port": "eighty"}], "probe 1 (tcp): option port: expected an integer"),
        ([{"type": "tcp", "port": 22, "url": "http://x/"}],
         "probe 1 (tcp): option(s) url do not apply to tcp probes (their own options: host, port)"),
        ([{"type": "tcp", "port": 22, "colour": "red"}],
         "probe 1 (tcp): option(s) colour are unknown for tcp"),
        ([{"type": "http", "url": "ftp://host/"}], "url 'ftp://host/' is not an http:// or https:// URL"),
        ([{"type": "http", "url": "http://h/", "json": ["status = ok"]}],
         "cannot parse json condition 'status = ok'"),
        ([{"type": "http", "url": "http://h/", "json": ["height > high"]}], "> needs a number, got 'high'"),
        ([{"type": "http", "url": "http://h/", "status": [200, 700]}],
         "status code 700 is not between 100 and 599"),
        ([{"type": "http", "url": "http://h/", "tls_min_days": 10}], "tls_min_days needs an https:// url"),
        ([{"type": "process"}], "process probes need exactly one of pidfile or process"),
        ([{"type": "process", "pidfile": "/run/x.pid", "process": "x"}], "exactly one of pidfile or process"),
        ([{"type": "disk", "path": "/"}], "disk probes need min_free_percent or min_free_bytes"),
        ([{"type": "disk", "min_free_bytes": "lots"}], "cannot read 'lots' as a size"),
        ([{"type": "memory"}], "option min_available_percent is required for memory probes"),
        ([{"type": "load", "max_load_per_cpu": 1, "timeout": 0}],
         "probe 1 (load): timeout must be greater than 0"),
        ([{"type": "memory", "min_available_percent": 5}, {"type": "memory", "min_available_percent": 9}],
         "probe 2 (memory): name 'memory' is already used by probe 1; give each probe a unique name"),
        (["tcp:80"], "probe 1 (no type): expected a dictionary"),
    ],
)  # fmt: skip
def test_bad_definitions_give_one_message_naming_the_probe(specs: list, message: str) -> None:
    with pytest.raises(ProbeConfigError) as excinfo:
        build_probes(specs)
    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_defaults_filled_in_by_ansible_module_are_not_mistaken_for_user_options() -> None:
    # AnsibleModule puts every suboption into every probe dict: None, or the merged default.
    filled = {key: option.get("default") for key, option in argument_spec().items()}
    tcp = build_probes([{**filled, "type": "tcp", "port": 6379}])[0]
    assert tcp.params == {"host": "127.0.0.1", "port": 6379}
    with pytest.raises(ProbeConfigError, match="option.s. method do not apply to tcp"):
        build_probes([{**filled, "type": "tcp", "port": 6379, "method": "POST"}])


def test_default_names_and_coercion() -> None:
    built = build_probes(
        [
            {"type": "http", "url": "https://ops:s3cret@example.org:8443/health?full=1", "status": "200,204"},
            {"type": "tcp", "port": "8545"},
            {"type": "redis"},
            {"type": "process", "pidfile": "~/app.pid"},
            {"type": "disk", "min_free_bytes": "1.5G", "min_free_percent": "10"},
            {"type": "memory", "min_available_percent": 5},
            {"type": "load", "max_load_per_cpu": "2", "timeout": "0.5", "name": "cpu"},
        ]
    )
    names = [probe.name for probe in built]
    assert names == [
        "http:https://example.org:8443/health?full=1",  # credentials left out
        "tcp:127.0.0.1:8545",
        "redis:127.0.0.1:6379",
        f"process:{os.path.expanduser('~/app.pid')}",
        "disk:/",
        "memory",
        "cpu",
    ]
    assert built[0].params["status"] == [200, 204]
    assert built[0].headers["Authorization"].startswith("Basic ")
    assert built[4].params["min_free_bytes"] == int(1.5 * 1024**3)
    assert built[6].timeout == 0.5


# ------------------------------------------------------------------------------------ JSON conditions


@pytest.mark.parametrize(
    ("text", "path", "op", "value"),
    [
        ("status == ok", ["status"], "==", "ok"),
        ("height>0", ["height"], ">", "0"),
        ("  node.sync.behind <= 5 ", ["node", "sync", "behind"], "<=", "5"),
        ("supported_chains contains ait-devnet", ["supported_chains"], "contains", "ait-devnet"),
        ("node.sync exists", ["node", "sync"], "exists", None),
        ("message == 'all good'", ["message"], "==", "all good"),
        ('version != "1.4.2"', ["version"], "!=", "1.4.2"),
        ("validators.0.name == v1", ["validators", "0", "name"], "==", "v1"),
    ],
)
def test_parse_condition(text: str, path: list[str], op: str, value: str | None) -> None:
    cond = parse_condition(text)
    assert (cond.path, cond.op, cond.value) == (path, op, value)


@pytest.mark.parametrize(
    "text",
    ["", "status", "status ok", "status =! ok", "a..b == 1", "height >= ", "status exists yes", "x < y"],
)
def test_parse_condition_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_condition(text)


@pytest.mark.parametrize(
    ("text", "ok", "message"),
    [
        ("status == ok", True, "status == ok"),
        ("status == down", False, "json field status is 'ok', expected 'down'"),
        ("status != down", True, "status != down"),
        ("status != ok", False, "json field status is 'ok', expected anything but 'ok'"),
        ("height > 0", True, None),
        ("height >= 42", True, None),
        ("height < 42", False, "json field height is 42, expected < 42"),
        ("height <= 42.0", True, None),
        ("height == 42", True, None),
        ("height == 42.0", True, None),
        ("height == '42'", False, "json field height is 42, expected '42'"),  # quoted: a string
        ("version == 1.4.2", True, None),
        ("version > 1", False, "json field version is '1.4.2', not a number (condition version > 1)"),
        ("ready == true", True, None),
        ("ready == false", False, "json field ready is true, expected 'false'"),
        ("peers == null", True, None),
        ("peers exists", True, None),
        ("missing exists", False, "json field missing is missing"),
        ("node.sync.mode == full", True, None),
        ("node.sync.behind == 0", True, None),
        ("node.sync.lag == 0", False, "json field node.sync.lag is missing (condition node.sync.lag == 0)"),
        ("supported_chains contains ait-devnet", True, None),
        ("supported_chains contains ait-mainnet", False,
         "json field supported_chains does not contain 'ait-mainnet' "
         '(it is ["ait-devnet", "ait-testnet"])'),
        ("status contains o", True, None),
        ("node contains sync", True, None),
        ("height contains 4", False, "json field height is 42, not a list, string or object"),
        ("validators.1.power == 0", True, None),
        ("validators.-1.name == v2", True, None),
        ("validators.5.name exists", False, "json field validators.5.name is missing"),
        ("height.deep exists", False, None),
    ],
)  # fmt: skip
def test_evaluate_condition(text: str, ok: bool, message: str | None) -> None:
    got_ok, got_message = evaluate_condition(parse_condition(text), HEALTH_DOC)
    assert got_ok is ok
    if message is not None:
        assert got_message == message


def test_parse_meminfo_and_check_memory() -> None:
    info = parse_meminfo(
        "MemTotal:        8000000 kB\nMemFree:  100 kB\nMemAvailable:    1000000 kB\nHugePages_Total: 0\n"
    )
    assert info == {
        "MemTotal": 8_192_000_000,
        "MemFree": 102_400,
        "MemAvailable": 1_024_000_000,
        "HugePages_Total": 0,
    }
    ok, detail, data = check_memory(info, 12.5)
    assert (ok, data["available_percent"]) == (True, 12.5)
    ok, detail, _data = check_memory(info, 20)
    assert ok is False and detail == "only 12.5% available (976.6 MiB of 7.6 GiB), minimum 20%"
    with pytest.raises(ProbeError, match="MemAvailable"):
        check_memory({"MemTotal": 1}, 5)
