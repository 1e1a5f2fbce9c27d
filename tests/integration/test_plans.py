"""Plans on the 3 SSH test hosts under an ops-policy.yml that needs an approved plan for deploys and names
alice as the only approver: plan -> (unapproved apply refused, nothing changed) -> (bob refused) ->
approve by alice -> apply; the applied plan is not applied again, and a plan whose inventory changed
after it was made is refused, naming the inventory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from stack import inventory_with, opsrunner, opsrunner_json

from opsrunner.memory import MemoryStore

DEMO = Path(__file__).resolve().parents[2] / "demo" / "aitbc_demo.py"
POLICY = "require_plan: [deploy]\napprovers: [alice]\napproval_ttl: 1h\n"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifacts") / "coordinator-7.tar.gz"
    argv = [sys.executable, str(DEMO), "release", "--version", "7", "--out", str(out)]
    subprocess.run(argv, check=True, capture_output=True)
    return out


def release_state(stack, hosts: tuple[str, ...]) -> dict[str, str]:
    """Each host's release record (what a deploy would rewrite)."""
    return {
        h: (stack.host(h).state_dir / "apps" / "coordinator-api" / ".release-state.json").read_text()
        for h in hosts
    }


def test_plan_approve_apply_a_deploy_under_the_policy(stack, artifact: Path, tmp_path: Path) -> None:
    inv_dir = inventory_with(stack, tmp_path / "inv", {"deploy_gate_timeout": 6})
    (inv_dir / "ops-policy.yml").write_text(POLICY)
    inv = inv_dir / "hosts.yml"
    hosts = ("t1", "t2")
    plan_args = ("plan", "deploy", "7", "--from", str(artifact), "-i", str(inv), "--limit", "t1,t2")

    # A direct deploy is what the policy forbids: the plan command is the way.
    rc, made = opsrunner_json(
        *plan_args, "--by", "carol", "--junit", str(tmp_path / "plan.xml"), cwd=tmp_path
    )
    assert rc == 0, made
    assert made["status"] == "proposed" and made["approval_required"] is True
    assert {c["host"] for c in made["changes"]} == set(hosts)
    assert set(made["inputs"]) == {"inventory", "vars", "policy", "collection", "artifact"}
    assert 'tests="2" failures="0"' in (tmp_path / "plan.xml").read_text()
    plan_id = made["id"]
    assert (tmp_path / "ai-memory" / "plans" / f"{plan_id}.md").read_text().startswith(f"# Plan {plan_id}")
    before = release_state(stack, hosts)

    # Unapproved: refused, nothing changed.
    refused = opsrunner("apply", plan_id, "--by", "carol", cwd=tmp_path)
    assert refused.returncode == 2 and "is not approved" in refused.stderr, refused.stderr
    assert release_state(stack, hosts) == before

    bob = opsrunner("approve", plan_id, "--by", "bob", cwd=tmp_path)
    assert bob.returncode == 2 and "bob may not approve" in bob.stderr
    rc, approved = opsrunner_json(
        "approve", plan_id, "--by", "alice", "--note", "release train", cwd=tmp_path
    )
    assert rc == 0 and approved["status"] == "approved" and approved["expires"], approved

    rc, applied = opsrunner_json("apply", plan_id, "--by", "alice", cwd=tmp_path)
    assert rc == 0, applied
    assert (
        applied["plan"]["status"] == "applied" and applied["plan"]["applied"]["run_id"] == applied["run_id"]
    )
    assert {h: r["current"] for h, r in applied["releases"].items()} == {h: "7" for h in hosts}
    store = MemoryStore(tmp_path / "ai-memory")
    assert [d.outcome for d in store.decisions() if d.kind == "plan"] == ["applied"]

    # The same plan again: refused.
    again = opsrunner("apply", plan_id, "--json", cwd=tmp_path)
    assert again.returncode == 2 and "is applied" in again.stdout

    # A new plan, approved, then the inventory changes: refused, naming the inventory, nothing changed.
    rc, second = opsrunner_json(*plan_args, cwd=tmp_path)
    assert rc == 0, second
    assert opsrunner("approve", second["id"], "--by", "alice", cwd=tmp_path).returncode == 0
    inv.write_text(inv.read_text() + "# edited after the plan\n")
    before = release_state(stack, hosts)
    stale = opsrunner("apply", second["id"], cwd=tmp_path)
    assert stale.returncode == 2 and "inventory changed" in stale.stderr, stale.stderr
    assert "artifact changed" not in stale.stderr
    assert release_state(stack, hosts) == before
    rc, shown = opsrunner_json("plans", "show", second["id"], cwd=tmp_path)
    assert shown["status"] == "refused"
