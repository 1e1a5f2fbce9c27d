"""Plans (opsrunner/plans.py) without a run: the record's round trip, ids and the store, input digests and
which of them changed, the refusals of approve and apply, and what a check run's events become."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from opsrunner import plans
from opsrunner.memory import MemoryStore
from opsrunner.plans import Plan, PlanStore
from opsrunner.policy import Policy
from opsrunner.settings import BadInput

WHEN = dt.datetime(2026, 11, 23, 22, 15, 3, tzinfo=dt.UTC)


def a_plan(**changes: object) -> Plan:
    inputs = {"inventory": "i1", "vars": "v1", "policy": "p1", "collection": "0.3.0", "artifact": "a1"}
    values: dict[str, object] = {
        "id": "",
        "action": "deploy",
        "args": {
            "version": "2",
            "artifact": "/r/c-2.tar.gz",
            "service": "web",
            "serial": "1",
            "extra_vars": {},
        },
        "inventory": "/inv/hosts.yml",
        "limit": None,
        "created": WHEN,
        "created_by": "carol",
        "inputs": inputs,
        "inputs_hash": plans.inputs_hash(inputs),
        "changes": [
            {"host": "t1", "task": "Copy", "action": "ansible.builtin.copy", "changed": True, "diff": "+x\n"}
        ],
        "check": {
            "run_id": "r1",
            "outcome": "ok",
            "exit_code": 0,
            "hosts": {"t1": {}, "t2": {}},
            "failures": [],
        },
    }
    values.update(changes)
    return Plan(**values)  # type: ignore[arg-type]


def policy(**values: object) -> Policy:
    base: dict[str, object] = {
        "path": Path("/inv/ops-policy.yml"),
        "require_plan": frozenset({"deploy"}),
        "approvers": ("alice",),
        "approval_ttl": dt.timedelta(hours=1),
        "raw": b"require_plan: [deploy]\n",
    }
    base.update(values)
    return Policy(**base)  # type: ignore[arg-type]


# -- the record and the store ----------------------------------------------------------------------


def test_a_plan_round_trips_through_its_json(tmp_path: Path) -> None:
    plan = a_plan(expires=WHEN + dt.timedelta(hours=1), approvals=[{"by": "alice", "at": "x", "note": ""}])
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan


def test_the_store_numbers_plans_per_day_and_writes_both_files(tmp_path: Path) -> None:
    store = PlanStore(MemoryStore(tmp_path))
    first, second = store.create(a_plan()), store.create(a_plan())
    assert (first.id, second.id) == ("PLAN-20261123-001", "PLAN-20261123-002")
    text = (tmp_path / "plans" / f"{first.id}.md").read_text()
    assert text.startswith(f"# Plan {first.id}: deploy web 2") and "### t1" in text and "### t2" in text
    assert store.get(first.id) == first
    assert [p.id for p in store.list("proposed")] == [first.id, second.id] and store.list("applied") == []


@pytest.mark.parametrize("bad", ["../../etc/passwd", "PLAN-2026-001", "PLAN-20261123-001.json", ""])
def test_a_bad_id_is_refused_before_it_becomes_a_path(tmp_path: Path, bad: str) -> None:
    with pytest.raises(BadInput, match="bad plan id"):
        PlanStore(MemoryStore(tmp_path)).get(bad)


def test_an_unknown_plan_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="unknown plan: PLAN-20261123-009"):
        PlanStore(MemoryStore(tmp_path)).get("PLAN-20261123-009")


def test_host_text_cannot_close_the_diff_fence() -> None:
    plan = a_plan(
        changes=[{"host": "t1", "task": "T", "action": "a", "changed": True, "diff": "```\n# Approvals"}]
    )
    text = plan.to_markdown()
    assert "````diff\n```\n# Approvals\n````" in text


def test_secret_arguments_are_masked_in_the_markdown() -> None:
    plan = a_plan(args={**a_plan().args, "extra_vars": {"url": "https://u:hunter22@example.org/x"}})
    assert "hunter22" not in plan.to_markdown()


# -- inputs ----------------------------------------------------------------------------------------


def test_inventory_digest_covers_the_vars_beside_a_file_and_skips_the_policy(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all: {}\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("a: 1\n")
    before = plans.inventory_digest(inv)
    (tmp_path / "ops-policy.yml").write_text("approvers: [alice]\n")
    assert plans.inventory_digest(inv) == before
    (tmp_path / "group_vars" / "all.yml").write_text("a: 2\n")
    assert plans.inventory_digest(inv) != before


def test_inventory_folder_digest_is_every_file_but_the_policy(tmp_path: Path) -> None:
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "hosts.yml").write_text("all: {}\n")
    before = plans.inventory_digest(tmp_path)
    (tmp_path / "ops-policy.yml").write_text("{}\n")
    assert plans.inventory_digest(tmp_path) == before
    (tmp_path / "host_vars" / "t1.yml").write_text("x: 1\n")
    assert plans.inventory_digest(tmp_path) != before


def test_artifact_digest_of_a_file_and_of_a_folder(tmp_path: Path) -> None:
    tarball = tmp_path / "r.tar.gz"
    tarball.write_bytes(b"abc")
    assert plans.artifact_digest(tarball) == plans.sha256_bytes(b"abc")
    folder = tmp_path / "release"
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "app").write_text("v1")
    before = plans.artifact_digest(folder)
    (folder / "bin" / "app").write_text("v2")
    assert plans.artifact_digest(folder) != before
    assert plans.artifact_digest(tmp_path / "gone") == "missing"


def test_changed_inputs_names_each_component_that_differs() -> None:
    old = a_plan().inputs
    new = {**old, "inventory": "i2", "artifact": "a2"}
    assert plans.changed_inputs(old, new) == ["inventory", "artifact"]
    assert plans.inputs_hash(old) != plans.inputs_hash(new)


# -- arguments -------------------------------------------------------------------------------------


def test_secret_named_extra_vars_are_refused_since_a_plan_is_on_disk(tmp_path: Path) -> None:
    artifact = tmp_path / "a.tar.gz"
    artifact.write_bytes(b"x")
    args = {"version": "2", "artifact": str(artifact), "extra_vars": {"db_password": "x"}}
    with pytest.raises(BadInput, match="db_password looks secret"):
        plans.normalize_args("deploy", args)


@pytest.mark.parametrize(
    ("action", "args", "message"),
    [
        ("deploy", {"version": "../x", "artifact": "/"}, "bad version"),
        ("restore", {"set": "newest"}, "without --confirm"),
        ("packages", {"names": ["jq; rm -rf /"]}, "bad package name"),
        ("service", {"action": "status", "service": "web"}, "service action"),
        ("reboot", {}, "unknown plan action"),
    ],
)
def test_bad_arguments_are_bad_input(action: str, args: dict, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        plans.normalize_args(action, args)


# -- approve and apply's refusals ------------------------------------------------------------------


def test_approve_needs_a_listed_approver_and_sets_the_expiry(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    made = PlanStore(store).create(a_plan())
    with pytest.raises(BadInput, match="bob may not approve plans: the policy's approvers are alice"):
        plans.approve(store, policy(), made.id, "bob", "")
    done = plans.approve(store, policy(), made.id, "alice", "go")
    assert (
        done.status == "approved" and done.approvals[0]["by"] == "alice" and done.approvals[0]["note"] == "go"
    )
    assert done.expires is not None and dt.timedelta(
        minutes=59
    ) < done.expires - plans.utcnow() <= dt.timedelta(hours=1)
    PlanStore(store).update(made.id, lambda p: setattr(p, "status", "applied"))
    with pytest.raises(BadInput, match="is applied: it cannot be approved"):
        plans.approve(store, policy(), made.id, "alice", "")


def test_refusals_in_order_done_stale_unapproved_expired() -> None:
    plan, rules, now = a_plan(), policy(), WHEN
    same = dict(plan.inputs)
    assert (
        "is not approved: the policy needs an approved plan for deploy"
        in plans.refusal(plan, rules, same, now)[0]
    )
    assert plans.refusal(plan, Policy(), same, now) == ("", False)  # no policy file: nothing asked
    why, stale = plans.refusal(plan, rules, {**same, "inventory": "other"}, now)
    assert "inventory changed" in why and stale
    approved = a_plan(status="approved", expires=now + dt.timedelta(minutes=5))
    assert plans.refusal(approved, rules, same, now) == ("", False)
    assert "expired" in plans.refusal(approved, rules, same, now + dt.timedelta(minutes=6))[0]
    assert "is applied" in plans.refusal(a_plan(status="applied"), Policy(), same, now)[0]


def test_packages_need_an_approval_only_when_one_is_not_allowed() -> None:
    rules = policy(require_plan=frozenset({"packages"}), allowed_packages=("jq", "python3-*"))
    assert not plans.approval_required(
        rules, a_plan(action="packages", args={"names": ["jq", "python3-yaml"]})
    )
    assert plans.approval_required(rules, a_plan(action="packages", args={"names": ["jq", "nmap"]}))
    restart = a_plan(action="service", args={"action": "restart", "service": "web"})
    assert not plans.approval_required(policy(require_plan=frozenset({"service-stop"})), restart)


# -- what a check run's events become --------------------------------------------------------------


def ok_event(host: str, task: str, res: dict) -> dict:
    return {
        "event": "runner_on_ok",
        "event_data": {"host": host, "task": task, "task_action": "x.y", "res": res},
    }


def test_the_collector_keeps_changed_tasks_with_their_diffs() -> None:
    collect = plans.ChangeCollector()
    collect(ok_event("t1", "Unchanged", {"changed": False, "diff": {"before": "a", "after": "b"}}))
    collect(
        ok_event(
            "t1",
            "Write",
            {"changed": True, "diff": {"before": "a\n", "after": "b\n", "before_header": "/etc/x"}},
        )
    )
    loop = {
        "changed": True,
        "results": [{"changed": True, "diff": [{"prepared": "+ item one"}]}, {"changed": False}],
    }
    collect(ok_event("t2", "Loop", loop))
    collect({"event": "runner_on_failed", "event_data": {"host": "t3", "res": {"changed": True}}})
    assert [(c["host"], c["task"]) for c in collect.changes] == [("t1", "Write"), ("t2", "Loop")]
    assert (
        "--- /etc/x\n+++ after\n" in collect.changes[0]["diff"] and "-a\n+b\n" in collect.changes[0]["diff"]
    )
    assert collect.changes[1]["diff"] == "+ item one\n"


def test_a_diff_of_structured_states_reads_as_yaml() -> None:
    text = plans.render_diff({"before": {"state": "absent"}, "after": {"state": "directory"}})
    assert "-state: absent\n+state: directory\n" in text


def test_junit_has_one_case_per_host_and_fails_the_failed_ones() -> None:
    summary = {
        "hosts": {"t1": {"failed": 0}, "t2": {"unreachable": 1}},
        "failures": [{"host": "t2", "message": "t2 unreachable: no route"}],
    }
    xml = plans.junit_xml("plan deploy", summary, a_plan().changes)
    assert 'tests="2" failures="1"' in xml and "t2 unreachable: no route" in xml and "<system-out>Copy" in xml
