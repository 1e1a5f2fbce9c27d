"""The docker backend of aitbc.ops.service through real Ansible against a real, private dockerd.

The container `aitbc-coordinator` runs `python3 -m http.server` on a free port with host networking (the
engine has no bridge), so the module's http probe on 127.0.0.1 reaches it. The module finds the engine
through its `docker_host` option, or DOCKER_HOST in its environment.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dockerd import DockerEngine, docker_engine  # noqa: F401 - the session fixture
from ports import free_port

pytestmark = pytest.mark.integration

ANSIBLE = str(Path(sys.executable).parent / "ansible")
LOCAL = ["-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=/usr/bin/python3"]
HEADER = re.compile(r"^(?P<host>\S+) \| (?P<status>[A-Z]+!?) => ", re.MULTILINE)
CONTAINER = "aitbc-coordinator"


@dataclass
class Coordinator:
    engine: DockerEngine
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def state(self) -> dict:
        out = self.engine.run("inspect", "--type", "container", "--format", "{{json .State}}", CONTAINER)
        return json.loads(out.stdout)


def service(
    env: dict[str, str], engine: DockerEngine | None, *extra: str, **args: object
) -> tuple[str, dict]:
    """`ansible localhost -m aitbc.ops.service` (docker_host set unless engine is None): status, result."""
    args.setdefault("name", CONTAINER)
    if engine is not None:
        args.setdefault("docker_host", engine.host)
    argv = [ANSIBLE, "localhost", *LOCAL, "-m", "aitbc.ops.service", "-a", json.dumps(args), *extra]
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False
    )
    match = HEADER.search(proc.stdout)
    assert match, f"no result in ansible output (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result, _end = json.JSONDecoder().raw_decode(proc.stdout, match.end())
    return match["status"], result


@pytest.fixture
def coordinator(docker_engine: DockerEngine) -> Iterator[Coordinator]:  # noqa: F811 - pytest fixture arg
    """A created, not started, container serving HTTP on a free host port."""
    port = free_port()
    docker_engine.run(
        "create",
        "--name",
        CONTAINER,
        "--network",
        "host",
        # tini as PID 1 forwards docker stop's SIGTERM; python as PID 1 would ignore it until the timeout.
        "--init",
        docker_engine.image,
        "python3",
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        "--directory",
        "/",
        str(port),
    )
    try:
        yield Coordinator(docker_engine, port)
    finally:
        docker_engine.run("rm", "-f", CONTAINER, check=False)


def test_lifecycle(ansible_env: dict[str, str], coordinator: Coordinator) -> None:
    engine = coordinator.engine
    status, res = service(ansible_env, engine, backend="docker", state="status")
    assert status == "SUCCESS" and res["changed"] is False, res
    assert res["service"]["active"] is False and res["service"]["backend"] == "docker"

    status, res = service(ansible_env, engine, backend="docker", state="started")
    assert status == "CHANGED", res
    first = res["service"]
    assert first["active"] is True and first["pid"] == coordinator.state()["Pid"]
    assert 0 <= first["uptime_s"] < 30

    status, res = service(ansible_env, engine, backend="docker", state="started")
    assert status == "SUCCESS" and res["changed"] is False and res["service"]["pid"] == first["pid"], res

    # Probes are the health module's (module_utils/probes/): each names its `type`.
    http = {"name": "coordinator http", "type": "http", "url": coordinator.url}
    probe = {"probes": [http], "timeout": 20, "interval": 0.2}
    status, res = service(ansible_env, engine, backend="docker", state="restarted", wait_healthy=probe)
    assert status == "CHANGED", res
    # The probes engine's detail: "200 in 8 ms".
    assert res["probes"][0]["ok"] is True and "200" in res["probes"][0]["detail"], res
    assert res["service"]["active"] is True and res["service"]["pid"] != first["pid"]

    status, res = service(ansible_env, engine, backend="docker", state="stopped", stop_timeout=5)
    assert status == "CHANGED" and res["service"]["active"] is False, res
    assert coordinator.state()["Running"] is False

    status, res = service(ansible_env, engine, backend="docker", state="stopped")
    assert status == "SUCCESS" and res["changed"] is False, res


def test_started_waits_healthy(ansible_env: dict[str, str], coordinator: Coordinator) -> None:
    http = {"type": "http", "url": coordinator.url, "status": [200]}
    probe = {"probes": [http], "timeout": 20, "interval": 0.2}
    status, res = service(
        ansible_env, coordinator.engine, backend="docker", state="started", wait_healthy=probe
    )
    assert status == "CHANGED" and [p["ok"] for p in res["probes"]] == [True], res


def test_check_mode_start_changes_nothing(ansible_env: dict[str, str], coordinator: Coordinator) -> None:
    status, res = service(ansible_env, coordinator.engine, "--check", backend="docker", state="started")
    assert status == "CHANGED" and "check mode" in res["msg"], res
    assert coordinator.state()["Running"] is False


def test_auto_detects_docker_from_option_and_env(
    ansible_env: dict[str, str], coordinator: Coordinator
) -> None:
    status, res = service(ansible_env, coordinator.engine, backend="auto", state="status")
    assert status == "SUCCESS" and res["service"]["backend"] == "docker", res

    # No docker_host: the docker CLI the module runs takes DOCKER_HOST from the module's environment.
    env = {**ansible_env, "DOCKER_HOST": coordinator.engine.host}
    status, res = service(env, None, backend="auto", state="started")
    assert status == "CHANGED" and res["service"]["backend"] == "docker", res
    assert coordinator.state()["Running"] is True


def test_auto_without_engine_fails_clearly(ansible_env: dict[str, str], coordinator: Coordinator) -> None:
    # The container exists only on the private engine: the default socket must not find it.
    env = {k: v for k, v in ansible_env.items() if k != "DOCKER_HOST"}
    status, res = service(env, None, backend="auto", state="status")
    assert status == "FAILED!" and "cannot detect a backend" in res["msg"], res


def test_missing_container_fails_with_one_line(ansible_env: dict[str, str], coordinator: Coordinator) -> None:
    status, res = service(ansible_env, coordinator.engine, backend="docker", state="status", container="nope")
    assert status == "FAILED!" and res["msg"] == "docker container not found: nope", res


def test_killed_main_process_reports_inactive(ansible_env: dict[str, str], coordinator: Coordinator) -> None:
    status, res = service(ansible_env, coordinator.engine, backend="docker", state="started")
    assert status == "CHANGED", res
    pid = res["service"]["pid"]
    os.kill(pid, signal.SIGKILL)  # from outside docker, as the OOM killer or an operator would
    deadline = time.monotonic() + 15
    while coordinator.state()["Running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    status, res = service(ansible_env, coordinator.engine, backend="docker", state="status")
    assert status == "SUCCESS" and res["service"]["active"] is False and res["service"]["pid"] is None, res
    assert res["service"]["detail"] == "exited"
