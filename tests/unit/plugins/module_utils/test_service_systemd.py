"""plugins/module_utils/service/systemd.py: the state from `systemctl show` output on fixed text."""

from __future__ import annotations

from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import ServiceSpec
from ansible_collections.aitbc.ops.plugins.module_utils.service.systemd import (
    SystemdBackend,
    parse_systemctl_show,
)


def test_systemd_status_from_show() -> None:
    props = parse_systemctl_show(
        "LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=812\n"
        "ActiveEnterTimestampMonotonic=5000000\nResult=success\n"
    )
    assert SystemdBackend.status_from_props(props, monotonic_now=17.5) == {
        "active": True,
        "pid": 812,
        "uptime_s": 12.5,
        "detail": "active/running",
    }
    inactive = parse_systemctl_show("ActiveState=failed\nSubState=failed\nMainPID=0\n")
    assert SystemdBackend.status_from_props(inactive) == {
        "active": False,
        "pid": None,
        "uptime_s": None,
        "detail": "failed/failed",
    }
    assert SystemdBackend(ServiceSpec(name="redis")).unit == "redis.service"
    assert (
        SystemdBackend(ServiceSpec(name="redis", unit="redis-server.service")).unit == "redis-server.service"
    )
