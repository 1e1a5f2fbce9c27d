"""A stack of the user's own that keeps no data: one `python3 -m http.server` process service on this
machine, from a one-file inventory (local connection) with nothing of the shipped group_vars.

`opsrunner backup` has nothing to back up there (exit 0, said so), the heartbeat adds no backup freshness
probe and is healthy, and the status page has no backup row for the host, under the inventory's site name.
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

SITE = "Webshop"


def one_file_inventory(tmp_path: Path, port: int) -> Path:
    """The catalogue and nothing else of ours: every derived value comes from the role aitbc.ops.catalogue."""
    root = tmp_path / "root"
    for folder in ("run", "log", "www"):
        (root / folder).mkdir(parents=True)
    web = {
        "backend": "process",
        "command": f"{sys.executable} -m http.server {port} --bind 127.0.0.1 --directory {root}/www",
        "pidfile": f"{root}/run/web.pid",
        "log_file": f"{root}/log/web.log",
        "probes": [{"type": "tcp", "port": port}],
    }
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ops_site_name": SITE,
        "aitbc_root": str(root),
        "aitbc_services": {"web": web},
        "aitbc_backup_store": str(tmp_path / "store"),
        # This machine is shared: what else listens on it (other tests' servers) is not this stack's.
        "heartbeat_security_listeners": False,
    }
    inventory = tmp_path / "site.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"aitbc": {"hosts": {"localhost": host}}}}}))
    return inventory


@pytest.fixture
def web_stack(tmp_path: Path) -> Iterator[Path]:
    """The inventory, with its web service started (and stopped after the test)."""
    inventory = one_file_inventory(tmp_path, free_port())
    started = opsrunner("service", "start", "web", "-i", str(inventory), cwd=tmp_path)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield inventory
    finally:
        opsrunner("service", "stop", "web", "-i", str(inventory), cwd=tmp_path)


def test_backup_on_a_host_without_data_has_nothing_to_do(web_stack: Path, tmp_path: Path) -> None:
    done = opsrunner("backup", "-i", str(web_stack), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing to back up on localhost" in done.stdout
    assert "no backup sources configured" not in done.stdout + done.stderr

    as_json = opsrunner("backup", "-i", str(web_stack), "--json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert (result["sets"], result["nothing_to_back_up"]) == ({}, ["localhost"])
    assert not (tmp_path / "root" / "backups").exists()

    unknown = opsrunner("backup", "-i", str(web_stack), "--service", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown service: nope" in unknown.stderr


def test_heartbeat_has_no_backup_probe_and_the_page_no_backup_row(web_stack: Path, tmp_path: Path) -> None:
    beat = opsrunner("heartbeat", "-i", str(web_stack), "--json", cwd=tmp_path)
    assert beat.returncode == 0, beat.stdout + beat.stderr
    result = json.loads(beat.stdout)
    assert result["healthy"] is True
    assert {(c["service"], c["status"]) for c in result["checks"]} == {("web", "ok"), ("host", "ok")}
    events = "".join(p.read_text() for p in (Path(result["artifact_dir"]) / "job_events").glob("*.json"))
    assert '"web tcp"' in events and '"host disk"' in events
    assert "backup freshness" not in events
    # The security checks that apply: no key material here, so no key files check; listeners are off.
    assert '"host ssh logins"' in events and '"category": "security"' in events
    assert '"host key files"' not in events and '"host listeners"' not in events

    out = tmp_path / "status"
    report = opsrunner("report", "-i", str(web_stack), "--out", str(out), "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    summary = json.loads(report.stdout)
    assert summary["site"] == SITE and summary["backups"] == {"ok": 0, "total": 0}
    page = (out / "index.html").read_text()
    assert f"<h1>{SITE} status</h1>" in page and f"<title>{SITE} status · " in page
    assert "data-backup=" not in page and "no backup set" not in page
    assert 'data-host="localhost" data-service="web" data-state="up"' in page
    assert "AITBC" not in page
