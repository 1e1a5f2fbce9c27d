"""Deploys of the demo coordinator to 3 real SSH test hosts: a serial rollout of a working release, a
broken release that rolls back its first batch and stops, a failed migration that restores the
pre-deploy backup, and manual rollbacks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from adhoc import REPO, run_module
from stack import inventory_with, opsrunner, opsrunner_json

from opsrunner.incidents import IncidentStore
from opsrunner.memory import MemoryStore

DEMO = REPO / "demo" / "aitbc_demo.py"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("artifacts")
    built = {}
    for version, broken in (("2", False), ("3", True), ("4", False)):
        out = folder / f"coordinator-{version}.tar.gz"
        argv = [sys.executable, str(DEMO), "release", "--version", version, "--out", str(out)]
        subprocess.run(argv + (["--broken"] if broken else []), check=True, capture_output=True)
        built[version] = out
    return built


def releases(inv: Path, cwd: Path) -> dict[str, dict]:
    rc, result = opsrunner_json("releases", "-i", str(inv), cwd=cwd)
    assert rc == 0, result
    return {row["host"]: row for row in result["releases"]}


def runs(ssh_hosts, ansible_env, host: str, version: str) -> bool:
    """Whether the coordinator on `host` answers /health as `version`."""
    probe = {
        "type": "http",
        "name": "v",
        "url": "http://127.0.0.1:18011/health",
        "json": [f"version == {version}"],
    }
    run = run_module(
        "aitbc.ops.health",
        ansible_env,
        {"probes": [probe], "fail_on_unhealthy": False},
        inventory=str(ssh_hosts.inventory),
        pattern=host,
    )
    return bool(run.result(host)[1]["healthy"])


def test_serial_deploy_then_broken_release_rolls_back_its_batch_and_stops(
    stack, artifacts, ansible_env, mailbox, tmp_path
):
    box, smtp_port = mailbox
    alerts = [f"mailto://127.0.0.1:{smtp_port}?from=ops@example.org&to=oncall@example.org"]
    inv = (
        inventory_with(stack, tmp_path / "inv", {"aitbc_alert_urls": alerts, "deploy_gate_timeout": 6})
        / "hosts.yml"
    )

    rc, result = opsrunner_json(
        "deploy", "2", "--from", str(artifacts["2"]), "--serial", "1", "-i", str(inv), cwd=tmp_path
    )
    assert rc == 0, result
    shown = releases(inv, tmp_path)
    assert {h: (r["current"], r["previous"]) for h, r in shown.items()} == {
        h: ("2", "1") for h in ("t1", "t2", "t3")
    }
    assert all(runs(stack, ansible_env, h, "2") for h in ("t1", "t2", "t3"))
    # The release holds the artifact's content: no copy of it is left to fill the disk.
    apps = [stack.host(h).state_dir / "apps" / "coordinator-api" for h in ("t1", "t2", "t3")]
    assert all((app / "releases" / "2").is_dir() and not (app / "artifacts").exists() for app in apps)
    store = MemoryStore(tmp_path / "ai-memory")
    assert sorted((d.kind, d.outcome, d.hosts[0]) for d in store.decisions()) == [
        ("deploy", "deployed", h) for h in ("t1", "t2", "t3")
    ]

    rc, result = opsrunner_json(
        "deploy", "3", "--from", str(artifacts["3"]), "--serial", "1", "-i", str(inv), cwd=tmp_path
    )
    assert rc == 1
    after = releases(inv, tmp_path)
    assert (after["t1"]["current"], after["t1"]["previous"]) == ("2", "3")  # rolled back to the recorded one
    assert runs(stack, ansible_env, "t1", "2")
    for untouched in ("t2", "t3"):
        assert after[untouched] == shown[untouched], "the remaining batches were never touched"
    (incident,) = IncidentStore(store).all()
    assert (incident.host, incident.service, incident.check, incident.status) == (
        "t1",
        "coordinator-api",
        "deploy",
        "open",
    )
    assert len(box.messages) == 1 and incident.id in box.messages[0]
    kinds = [(d.kind, d.outcome) for d in store.decisions() if d.hosts == ["t1"]]
    assert kinds == [("deploy", "deployed"), ("rollback", "rolled-back")]

    # A good deploy on t1 later resolves the incident.
    rc, _ = opsrunner_json(
        "deploy", "4", "--from", str(artifacts["4"]), "-i", str(inv), "--limit", "t1", cwd=tmp_path
    )
    assert rc == 0
    assert IncidentStore(store).get(incident.id).status == "resolved"


def test_manual_rollback_to_a_named_release_then_redeploy_changes_nothing(stack, artifacts, tmp_path):
    inv = inventory_with(stack, tmp_path / "inv", {"deploy_gate_timeout": 6}) / "hosts.yml"
    assert (
        opsrunner(
            "deploy", "2", "--from", str(artifacts["2"]), "-i", str(inv), "--limit", "t2", cwd=tmp_path
        ).returncode
        == 0
    )
    rc, result = opsrunner_json("rollback", "--to", "1", "-i", str(inv), "--limit", "t2", cwd=tmp_path)
    assert rc == 0, result
    assert result["releases"]["t2"]["current"] == "1"
    rc, result = opsrunner_json(
        "deploy", "1", "--from", str(artifacts["2"]), "-i", str(inv), "--limit", "t2", cwd=tmp_path
    )
    assert rc == 0 and result["hosts"]["t2"]["changed"] == 0, result
    missing = opsrunner("rollback", "--to", "9", "-i", str(inv), "--limit", "t2", cwd=tmp_path)
    assert missing.returncode in (1, 2) and "9" in missing.stdout + missing.stderr
    assert releases(inv, tmp_path)["t2"]["current"] == "1"


def dump(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_failed_migration_restores_the_pre_deploy_backup(stack, artifacts, tmp_path):
    t3 = next(h for h in stack.hosts if h.name == "t3")
    db = t3.state_dir / "data" / "coordinator" / "coordinator.db"
    before_release = None
    inv = inventory_with(stack, tmp_path / "inv", {"deploy_gate_timeout": 6}) / "hosts.yml"
    before_release = releases(inv, tmp_path)["t3"]["current"]
    script = tmp_path / "bad-migration.sh"
    script.write_text(
        f"#!/bin/sh\nsqlite3 {db} \"INSERT INTO jobs (payload, created_at) VALUES ('half-migrated', 'x'); "
        f"CREATE TABLE half_done (x);\"\necho 'migration 4 failed halfway' >&2\nexit 3\n"
    )
    script.chmod(0o755)
    before = dump(db)
    done = opsrunner(
        "deploy",
        "4",
        "--from",
        str(artifacts["4"]),
        "-i",
        str(inv),
        "--limit",
        "t3",
        "-e",
        f"deploy_migrate_command={script}",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout
    assert "migration failed" in done.stdout
    assert dump(db) == before
    after = releases(inv, tmp_path)["t3"]
    assert after["current"] == before_release
    status = opsrunner("service", "status", "coordinator-api", "-i", str(inv), "--limit", "t3", cwd=tmp_path)
    assert status.returncode == 0
    (decision,) = [d for d in MemoryStore(tmp_path / "ai-memory").decisions() if d.kind == "deploy"]
    assert decision.outcome == "migration-failed"
