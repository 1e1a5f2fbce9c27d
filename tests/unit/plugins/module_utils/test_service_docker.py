"""plugins/module_utils/service/docker.py: the state from `docker inspect` on fixed input."""

from __future__ import annotations

import pytest
from ansible_collections.aitbc.ops.plugins.module_utils.service.docker import (
    docker_status_from_state,
    parse_docker_time,
)


def test_docker_status_from_state() -> None:
    state = {"Status": "running", "Running": True, "Pid": 321, "StartedAt": "2025-01-02T03:04:05.123456789Z"}
    started = parse_docker_time(state["StartedAt"])
    assert started == pytest.approx(1735787045.123456)
    assert docker_status_from_state(state, now=started + 60) == {
        "active": True,
        "pid": 321,
        "uptime_s": 60.0,
        "detail": "running",
    }
    exited = {"Status": "exited", "Running": False, "Pid": 0, "StartedAt": "0001-01-01T00:00:00Z"}
    assert docker_status_from_state(exited) == {
        "active": False,
        "pid": None,
        "uptime_s": None,
        "detail": "exited",
    }
    assert parse_docker_time("2025-01-02T03:04:05+02:00") == pytest.approx(1735779845.0)
