"""plugins/module_utils/service/systemd.py: the state from `systemctl show` output and the journal, on fixed
text."""

from __future__ import annotations

from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import ServiceSpec
from ansible_collections.aitbc.ops.plugins.module_utils.service.systemd import (
    SystemdBackend,
    failure_cause,
    is_start_limit,
    last_failure_result,
    parse_show_timestamp,
    parse_systemctl_show,
    restart_warning,
)

JOURNAL = [
    "Dec 04 19:20:01 host python3[812]: Traceback (most recent call last):",
    "Dec 04 19:20:01 host python3[812]: OSError: [Errno 98] Address already in use",
    "Dec 04 19:20:01 host systemd[1]: crashy.service: Main process exited, code=exited, status=1/FAILURE",
    "Dec 04 19:20:01 host systemd[1]: crashy.service: Failed with result 'exit-code'.",
    "Dec 04 19:20:02 host systemd[1]: crashy.service: Start request repeated too quickly.",
    "Dec 04 19:20:02 host systemd[1]: crashy.service: Failed with result 'start-limit-hit'.",
]


def test_systemd_status_from_show() -> None:
    props = parse_systemctl_show(
        "LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=812\n"
        "ActiveEnterTimestampMonotonic=5000000\nActiveEnterTimestamp=Fri 2026-12-04 19:16:16 UTC\n"
        "Result=success\nNRestarts=2\n"
    )
    assert SystemdBackend.status_from_props(props, monotonic_now=17.5) == {
        "active": True,
        "pid": 812,
        "uptime_s": 12.5,
        "detail": "active/running",
        "restarts": 2,
        "result": "success",
        "active_since": "2026-12-04T19:16:16Z",
    }
    inactive = parse_systemctl_show(
        "ActiveState=failed\nSubState=failed\nMainPID=0\nResult=signal\nNRestarts=0\n"
        "ActiveEnterTimestamp=Fri 2026-12-04 19:16:16 UTC\n"
    )
    assert SystemdBackend.status_from_props(inactive) == {
        "active": False,
        "pid": None,
        "uptime_s": None,
        "detail": "failed/failed",
        "restarts": 0,
        "result": "signal",
        "active_since": None,
    }
    assert SystemdBackend(ServiceSpec(name="redis")).unit == "redis.service"
    assert (
        SystemdBackend(ServiceSpec(name="redis", unit="redis-server.service")).unit == "redis-server.service"
    )


def test_older_systemd_without_nrestarts_reports_none() -> None:
    status = SystemdBackend.status_from_props({"ActiveState": "active", "SubState": "running"})
    assert status["restarts"] is None and status["result"] is None and status["active_since"] is None


def test_show_timestamps() -> None:
    assert parse_show_timestamp("Fri 2026-12-04 19:16:16 UTC") == "2026-12-04T19:16:16Z"
    assert parse_show_timestamp("@1796411776") == "2026-12-04T19:16:16Z"
    assert parse_show_timestamp("") is None and parse_show_timestamp("n/a") is None
    assert parse_show_timestamp("Fri 2026-12-04 20:16:16 CET") is None  # another zone: never a guess


def test_restart_warning_names_the_count_and_the_last_result() -> None:
    assert restart_warning("a.service", 0, "signal") is None
    assert restart_warning("a.service", 2, "signal") == (
        "a.service was restarted by systemd 2 time(s) (last result: signal)"
    )
    assert restart_warning("a.service", 1, "success") == "a.service was restarted by systemd 1 time(s)"
    assert last_failure_result(JOURNAL) == "start-limit-hit"
    assert last_failure_result(JOURNAL[:4]) == "exit-code"
    assert last_failure_result(["nothing"]) is None


def test_start_limit_and_its_cause() -> None:
    fatal = "a fatal signal was delivered to the control process"
    too_often = "Job for x.service failed because start of the service was attempted too often."
    assert is_start_limit({"Result": "start-limit-hit"}, fatal, [])
    assert is_start_limit({}, too_often, [])
    # Restart= ran into the limit: systemd 252 keeps Result=exit-code; only the journal says so.
    assert is_start_limit({"Result": "exit-code"}, fatal, [*JOURNAL[:5], JOURNAL[3]])
    assert not is_start_limit({"Result": "exit-code"}, fatal, JOURNAL[:4])
    later = [*JOURNAL, "Dec 04 19:30:00 host systemd[1]: Started crashy.service.", *JOURNAL[2:4]]
    assert not is_start_limit({"Result": "exit-code"}, fatal, later)  # an old hit, then a new failure
    assert failure_cause(JOURNAL) == (
        "Main process exited, code=exited, status=1/FAILURE; OSError: [Errno 98] Address already in use"
    )
    assert failure_cause([]) == "no journal lines"
