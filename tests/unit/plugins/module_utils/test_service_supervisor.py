"""plugins/module_utils/service/supervisor.py: `supervisorctl status` output on fixed text."""

from __future__ import annotations

from ansible_collections.aitbc.ops.plugins.module_utils.service.supervisor import (
    _supervisor_unknown,
    parse_supervisor_status,
)


def test_parse_supervisor_status() -> None:
    parse = parse_supervisor_status
    running = parse("web                              RUNNING   pid 4242, uptime 1 day, 2:03:04\n", "web")
    assert running == {
        "active": True,
        "pid": 4242,
        "uptime_s": 93784.0,
        "detail": "RUNNING pid 4242, uptime 1 day, 2:03:04",
    }
    assert parse("web  RUNNING   pid 7, uptime 0:00:05", "web")["uptime_s"] == 5.0
    stopped = parse("web                              STOPPED   Not started\n", "web")
    assert (
        stopped["active"] is False and stopped["pid"] is None and stopped["detail"] == "STOPPED Not started"
    )
    fatal = parse("web   FATAL     Exited too quickly (process log may have details)", "web")
    assert fatal["active"] is False and fatal["detail"].startswith("FATAL")
    assert parse("web   EXITED    Nov 23 10:00 PM", "web")["active"] is False
    assert parse("grp:web   RUNNING   pid 9, uptime 0:01:00", "grp:web")["pid"] == 9
    assert parse("web: ERROR (no such process)", "web") is None
    assert _supervisor_unknown("web: ERROR (no such process)", "web")
    assert parse("unix:///tmp/x.sock no such file", "web") is None
    assert not _supervisor_unknown("unix:///tmp/x.sock no such file", "web")
