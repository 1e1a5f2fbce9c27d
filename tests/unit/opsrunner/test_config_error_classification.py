"""Which failed tasks are configuration errors (recorder.config_error), and what a run with one becomes."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsrunner.memory import MEMORY_DIR_ENV, MemoryStore
from opsrunner.recorder import Recorder, TaskFailure, config_error, first_config_error
from opsrunner.runner import Runner
from opsrunner.settings import Settings


def failure(message: str, action: str = "ansible.builtin.debug", **extra: object) -> TaskFailure:
    return TaskFailure(host="web1", task="Probe", action=action, message=message, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("message", "action", "names"),
    [
        (
            "Task failed: 'no_such_var' is undefined",
            "ansible.builtin.validate_argument_spec",
            "'no_such_var'",
        ),
        (
            "The task includes an option with an undefined variable. The error was: 'dict object' has no "
            "attribute 'url'",
            "aitbc.ops.health",
            "'url'",
        ),
        (
            "Task failed: The filter plugin 'aitbc.ops.health_probes' failed: service nginx: probe path "
            "/health needs the service's url",
            "aitbc.ops.health",
            "service nginx",
        ),
        (
            "probe 1 (redis ping): unknown probe type 'bogus' (known types: http, tcp)",
            "aitbc.ops.health",
            "unknown probe type 'bogus'",
        ),
        ("probe 2 (web http): option url is required for http probes", "aitbc.ops.health", "option url"),
        ("probes must be a non-empty list of probe definitions", "aitbc.ops.health", "probes must"),
        (
            "Unsupported parameters for (aitbc.ops.health) module: probes.pth",
            "aitbc.ops.health",
            "probes.pth",
        ),
        ("missing required arguments: name", "aitbc.ops.service", "name"),
        ("Validation of arguments failed:\nheartbeat_failure_threshold", "ansible.builtin.x", "Validation"),
    ],
)
def test_configuration_errors_are_one_line_naming_the_cause(message: str, action: str, names: str) -> None:
    line = config_error(failure(message, action))
    assert line is not None
    assert line.startswith("configuration error: ")
    assert names in line
    assert "Task failed:" not in line
    assert "\n" not in line
    assert "web1" in line


@pytest.mark.parametrize(
    ("message", "action"),
    [
        ("backup failed, no set written: redis RDB file not found", "aitbc.ops.backup"),
        ("coordinator-api did not become healthy within 30 s", "aitbc.ops.service"),
        # A host's probe message looks like ProbeConfigError only from the health module.
        ("probe 1 (x): unknown probe type 'y'", "aitbc.ops.service"),
        ("Failed to connect to the host via ssh", "ansible.builtin.ping"),
    ],
)
def test_other_failures_are_not_configuration_errors(message: str, action: str) -> None:
    assert config_error(failure(message, action)) is None


def test_unreachable_is_never_a_configuration_error() -> None:
    assert config_error(failure("'x' is undefined", unreachable=True)) is None


def test_the_first_configuration_error_wins() -> None:
    failures = [
        failure("service failed to start"),
        failure("Task failed: 'first' is undefined"),
        failure("Task failed: 'second' is undefined"),
    ]
    assert "'first'" in (first_config_error(failures) or "")
    assert first_config_error(failures[:1]) is None


def test_a_run_with_a_configuration_error_exits_2_not_unhealthy(tmp_path: Path) -> None:
    recorder = Recorder(MemoryStore(tmp_path), source="test", playbook="heartbeat.yml")
    res = {"msg": "probe 1 (redis ping): unknown probe type 'bogus' (known types: http)"}
    recorder.handle(
        {
            "event": "runner_on_failed",
            "event_data": {"host": "a", "task": "Probe", "task_action": "aitbc.ops.health", "res": res},
        }
    )
    recorder.handle(
        {"event": "playbook_on_stats", "event_data": {"failures": {"a": 1}, "processed": {"a": 1}}}
    )
    record = recorder.finish(rc=2)
    assert record.outcome == "config-error"
    assert record.exit_code == 2
    assert record.config_error is not None and "unknown probe type 'bogus'" in record.config_error
    assert record.to_dict()["config_error"] == record.config_error


def test_the_runner_gives_the_run_its_memory_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MEMORY_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings.load(memory_dir="elsewhere/memory", work_dir=str(tmp_path / "work"))
    env = Runner(settings)._envvars("run-1")
    assert env[MEMORY_DIR_ENV] == str(tmp_path / "elsewhere" / "memory")
    assert Path(env[MEMORY_DIR_ENV]).is_absolute()
