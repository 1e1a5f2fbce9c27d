"""Env sync and the host disk probe on a stack of the user's own, from a one-file inventory that defines
only its catalogue (local connection, this machine): environment.md lists only what applies (no state root,
config, backup key or drill queries of AITBC, the URL's credentials masked), schedules are read back from
the schedule host ("not installed", then the jobs `opsrunner schedule install` wrote), and the heartbeat's
disk probe is healthy although the service's data_dir and aitbc_root were never created.

The schedule goes to the cron backend with its cron file, unit folder and locks in the test's own folder.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ports import free_port
from stack import opsrunner
from test_schedule import cron_daemon_missing

pytestmark = pytest.mark.integration


def inventory(tmp_path: Path, port: int) -> Path:
    """The catalogue and nothing else of ours; aitbc_root and the data_dir do not exist."""
    root = tmp_path / "web"
    for folder in ("run", "log", "www"):
        (root / folder).mkdir(parents=True)
    web = {
        "backend": "process",
        "command": f"{sys.executable} -m http.server {port} --bind 127.0.0.1 --directory {root}/www",
        "pidfile": f"{root}/run/web.pid",
        "log_file": f"{root}/log/web.log",
        "data_dir": f"{tmp_path}/never/created/data",
        "url": f"http://ops:pl4nted-pass@127.0.0.1:{port}/",
        "probes": [{"type": "tcp", "port": port}],
    }
    schedule = tmp_path / "schedule"
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "aitbc_root": f"{tmp_path}/no-such-root",
        "aitbc_services": {"web": web},
        "schedule_cron_file": f"{schedule}/cron.d/webshop",
        "schedule_systemd_dir": f"{schedule}/systemd",
        "schedule_lock_dir": f"{schedule}/lock",
        # This machine is shared: what else listens on it (other tests' servers) is not this stack's.
        "heartbeat_security_listeners": False,
    }
    for folder in ("cron.d", "systemd", "lock"):
        (schedule / folder).mkdir(parents=True)
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump({"all": {"children": {"web": {"hosts": {"localhost": host}}}}}))
    return path


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Path]:
    inv = inventory(tmp_path, free_port())
    started = opsrunner("service", "start", "web", "-i", str(inv), cwd=tmp_path)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield inv
    finally:
        opsrunner("service", "stop", "web", "-i", str(inv), cwd=tmp_path)


def sync(inv: Path, tmp_path: Path, *extra: str) -> str:
    done = opsrunner("env", "sync", *extra, "-i", str(inv), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return (tmp_path / "ai-memory" / "knowledge" / "environment.md").read_text()


def test_env_sync_lists_only_what_applies_and_the_installed_schedule(web: Path, tmp_path: Path) -> None:
    doc = tmp_path / "ai-memory" / "knowledge" / "environment.md"
    text = sync(web, tmp_path)
    assert "| host | address | connection |\n" in text  # no state root, no config column
    assert "| web | process |" in text and "//ops:***@127.0.0.1:" in text
    assert "pl4nted-pass" not in text
    assert "Nothing to back up" in text
    for absent in (
        "aitbc_root",
        "no-such-root",
        "aitbc_backup_key",
        "key material",
        "Drill queries",
        "AITBC",
    ):
        assert absent not in text, absent
    assert "not installed" in text and "enabled" not in text
    mtime = doc.stat().st_mtime_ns
    assert sync(web, tmp_path) == text and doc.stat().st_mtime_ns == mtime  # unchanged: not rewritten

    if reason := cron_daemon_missing():
        pytest.skip(reason)
    installed = opsrunner("schedule", "install", "--backend", "cron", "-i", str(web), cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    try:
        text = sync(web, tmp_path)
        assert "not installed" not in text
        rows = [line for line in text.splitlines() if " | cron `" in line]
        assert [row.split(" | ")[0] for row in rows] == ["| heartbeat", "| log-review", "| backup"], text
        assert "| heartbeat | cron `" in text and "| `*/30 * * * *` | runs as root |" in text
        assert sync(web, tmp_path, "--check") == text
    finally:
        opsrunner("schedule", "remove", "-i", str(web), cwd=tmp_path)
    assert "not installed" in sync(web, tmp_path)


def host_disk_result(artifact_dir: Path) -> dict:
    """The 'host disk' probe result of the heartbeat's health task, from the run's job events."""
    for path in sorted((artifact_dir / "job_events").glob("*.json")):
        event = json.loads(path.read_text())
        res = (event.get("event_data") or {}).get("res") or {}
        for probe in res.get("results") or []:
            if isinstance(probe, dict) and probe.get("name") == "host disk":
                return probe
    raise AssertionError(f"no host disk result in {artifact_dir}")


def test_heartbeat_disk_probe_checks_the_parent_of_what_does_not_exist(web: Path, tmp_path: Path) -> None:
    beat = opsrunner("heartbeat", "-i", str(web), "--json", cwd=tmp_path)
    assert beat.returncode == 0, beat.stdout + beat.stderr
    result = json.loads(beat.stdout)
    assert result["healthy"] is True
    assert {(c["service"], c["status"]) for c in result["checks"]} == {("web", "ok"), ("host", "ok")}
    disk = host_disk_result(Path(result["artifact_dir"]))
    assert disk["ok"] is True, disk
    missing = f"{tmp_path}/never/created/data"
    assert f"{missing} does not exist, checked {tmp_path}" in disk["detail"], disk
    assert [fs["checked"] for fs in disk["data"]["filesystems"]][0] == "/"
    assert not (tmp_path / "no-such-root").exists() and not Path(missing).exists()
