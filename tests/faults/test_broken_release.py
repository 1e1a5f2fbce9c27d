"""Fault: a broken release. Two hosts (local connection, roots of their own) run a deployable service, the
demo coordinator, from app_root/current. Release 1 is deployed to both; then release 2, whose /health
answers 500, one host per batch. The first batch fails its health gate and rolls back to 1, which serves
again; the second batch is never touched (not unpacked, not switched, not restarted); an incident and a
rollback decision say so, and the deploy exits 1."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from faultlib import REPO, Site, http_get, web_site

from opsrunner.incidents import IncidentStore
from opsrunner.memory import MemoryStore

pytestmark = pytest.mark.integration

DEMO = REPO / "demo" / "aitbc_demo.py"
HOSTS = ["web1", "web2"]


def release(folder: Path, version: str, broken: bool) -> Path:
    """A release tarball of the demo coordinator (a broken build answers /health with 500)."""
    out = folder / f"web-{version}.tar.gz"
    argv = [sys.executable, str(DEMO), "release", "--version", version, "--out", str(out)]
    subprocess.run(argv + (["--broken"] if broken else []), check=True, capture_output=True)
    return out


def deployable_site(tmp_path: Path) -> Site:
    app = "{{ aitbc_root }}/apps/web"
    serve = f"{app}/current/aitbc_demo.py coordinator --port {{{{ web_port }}}}"
    command = f"{sys.executable} {serve} --db {{{{ aitbc_root }}}}/data/jobs.db"
    gate = [{"type": "http", "path": "/health", "json": ["status == ok"]}]
    site = web_site(
        tmp_path,
        HOSTS,
        extra={"deploy_gate_timeout": 5},
        command=command,
        service={"app_root": app, "probes": gate, "databases": ["{{ aitbc_root }}/data/jobs.db"]},
    )
    for host in HOSTS:  # the service's data, there before its first release (the pre-deploy backup reads it)
        (tmp_path / host / "data").mkdir()
        sqlite3.connect(tmp_path / host / "data" / "jobs.db").close()
    return site


def health(site: Site, host: str) -> tuple[int, dict]:
    status, body = http_get(f"http://127.0.0.1:{site.ports[host]}/health")
    return status, json.loads(body)


def app_state(site: Site, host: str) -> dict[str, object]:
    """What a deploy could have touched on a host: the release state file, the release folders, the
    current link, the service's pid, the backup sets (a deploy takes one first)."""
    app = site.root / host / "apps" / "web"
    return {
        "state": (app / ".release-state.json").read_text(),
        "releases": sorted(p.name for p in (app / "releases").iterdir()),
        "current": str((app / "current").readlink()),
        "pid": site.pid(host),
        "sets": sorted(p.name for p in (site.root / host / "backups" / host).iterdir()),
    }


def test_a_broken_release_rolls_back_its_batch_and_the_next_batch_is_untouched(tmp_path: Path) -> None:
    good, broken = release(tmp_path, "1", False), release(tmp_path, "2", True)
    site = deployable_site(tmp_path)
    try:
        first = site.run("deploy", "1", "--from", str(good), "--service", "web", "--serial", "1", "--json")
        assert first.returncode == 0, first.stdout + first.stderr
        assert {h: (health(site, h)[0], health(site, h)[1]["version"]) for h in HOSTS} == {
            h: (200, "1") for h in HOSTS
        }
        untouched = app_state(site, "web2")

        done = site.run("deploy", "2", "--from", str(broken), "--service", "web", "--serial", "1", "--json")
        assert done.returncode == 1, done.stdout + done.stderr
        outcome = json.loads(done.stdout)
        assert outcome["releases"]["web1"] == {"current": "1", "previous": "2"}, outcome["releases"]
        assert "web2" not in outcome["releases"]
        assert any(
            "failed its health gate on web1; rolled back to 1" in f["message"] for f in outcome["failures"]
        ), outcome["failures"]

        status, body = health(site, "web1")
        assert (status, body["status"], body["version"]) == (200, "ok", "1"), body  # the previous serves
        assert (site.root / "web1" / "apps" / "web" / "current").readlink() == Path("releases/1")
        assert app_state(site, "web2") == untouched, "the later batch was touched"
        assert health(site, "web2")[1]["version"] == "1"

        store = MemoryStore(site.memory)
        (incident,) = IncidentStore(store).all()
        assert (incident.host, incident.service, incident.check, incident.status) == (
            "web1",
            "web",
            "deploy",
            "open",
        )
        assert "automatic rollback" in incident.timeline[0].text
        decisions = {h: [(d.kind, d.outcome) for d in store.decisions() if d.hosts == [h]] for h in HOSTS}
        assert decisions == {
            "web1": [("deploy", "deployed"), ("rollback", "rolled-back")],
            "web2": [("deploy", "deployed")],
        }
        (rollback,) = [d for d in store.decisions() if d.kind == "rollback"]
        assert "remaining batches were not touched" in rollback.impact
    finally:
        site.stop_all()


def page_site(tmp_path: Path, service: dict) -> tuple[Site, Path]:
    """One host serving app_root/current with http.server, and a release of one page to deploy there."""
    site = web_site(
        tmp_path,
        ["web1"],
        command=f"{sys.executable} -m http.server {{{{ web_port }}}} --bind 127.0.0.1 --directory "
        "{{ aitbc_root }}/apps/web/current",
        service={"app_root": "{{ aitbc_root }}/apps/web", **service},
    )
    page = tmp_path / "page"
    page.mkdir()
    (page / "index.html").write_text("release 1\n")
    return site, page


def backup_sets(site: Site, host: str) -> list[str]:
    folder = site.root / host / "backups" / host
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def test_a_service_without_data_can_be_deployed(tmp_path: Path) -> None:
    """No databases, no backup entries: the deploy has no data to back up and says so in its decision;
    `opsrunner backup --service web` by hand still refuses the name clearly."""
    site, page = page_site(tmp_path, {})
    try:
        by_hand = site.run("backup", "--service", "web")
        assert by_hand.returncode == 2, by_hand.stdout + by_hand.stderr
        assert "unknown service: web (no backup sources" in by_hand.stderr

        done = site.run("deploy", "1", "--from", str(page), "--service", "web")
        assert done.returncode == 0, done.stdout + done.stderr
        assert http_get(f"http://127.0.0.1:{site.ports['web1']}/") == (200, b"release 1\n")
        (decision,) = MemoryStore(site.memory).decisions()
        assert decision.outcome == "deployed"
        assert decision.rationale.startswith(
            "No pre-deploy backup: no data to back up (web has no databases"
        ), decision.rationale
        assert backup_sets(site, "web1") == []
    finally:
        site.stop_all()


def test_the_first_deploy_before_the_database_exists_goes_on_without_a_backup(tmp_path: Path) -> None:
    """A fresh host: the service's database does not exist yet. By hand, `opsrunner backup` fails on it
    (a missing source is a problem there); the pre-deploy backup has nothing to lose, so the deploy goes on
    and its decision says why. The next deploy, once the database exists, backs it up first."""
    site, page = page_site(tmp_path, {"databases": ["{{ aitbc_root }}/data/app.db"]})
    db = tmp_path / "web1" / "data" / "app.db"
    try:
        by_hand = site.run("backup", "--json")
        assert by_hand.returncode == 1, by_hand.stdout + by_hand.stderr
        assert f"sqlite source not found: {db}" in by_hand.stdout
        assert backup_sets(site, "web1") == []

        done = site.run("deploy", "1", "--from", str(page), "--service", "web")
        assert done.returncode == 0, done.stdout + done.stderr
        assert http_get(f"http://127.0.0.1:{site.ports['web1']}/") == (200, b"release 1\n")
        (decision,) = MemoryStore(site.memory).decisions()
        assert decision.outcome == "deployed"
        assert f"nothing to back up yet ({db} does not exist yet)" in decision.rationale, decision.rationale
        assert backup_sets(site, "web1") == []

        db.parent.mkdir()
        sqlite3.connect(db).close()
        (page / "index.html").write_text("release 2\n")
        again = site.run("deploy", "2", "--from", str(page), "--service", "web")
        assert again.returncode == 0, again.stdout + again.stderr
        (taken,) = backup_sets(site, "web1")
        latest = MemoryStore(site.memory).decisions()[-1]
        assert latest.rationale.startswith(f"Pre-deploy backup {taken} taken and verified"), latest.rationale
    finally:
        site.stop_all()
