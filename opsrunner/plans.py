"""Plans: a change run in check and diff mode, written down, approved by a person, then applied.

`make_plan` runs an action's playbook with --check --diff and writes ai-memory/plans/PLAN-YYYYMMDD-NNN.md
(for people) and .json (for programs): the action and its arguments, the digests of its inputs, and what
would change on each host (masked by the run's redactor: the runner hands `on_event` redacted events).
`approve` records an approval where the policy (ops-policy.yml beside the inventory) names the approver,
valid for the policy's approval_ttl. `apply_plan` runs the action for real inside a Change (freeze check,
maintenance window, announcements) once the plan is approved where the policy asks, unexpired, and its
inputs unchanged; it marks the plan applied or failed and writes a decision record.

The CLI (opsrunner/cli/plans.py) and the MCP server call this module; it never imports either.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from .change import Change
from .deploys import request_error
from .hooks import playbook_event
from .memory import DailyEntry, Decision, MemoryStore, atomic_write, format_time, one_line, parse_time, utcnow
from .policy import ACTIONS as POLICY_ACTIONS
from .policy import POLICY_FILE, Policy
from .recorder import RunRecord, first_bad_request
from .redact import Redactor, is_secret_name
from .runner import Runner, RunOutcome, RunRequest
from .settings import BadInput, Settings

PLANS_DIR = "plans"
ID_RE = re.compile(r"\APLAN-\d{8}-\d{3}\Z")
STATUSES = ("proposed", "approved", "applied", "failed", "refused")
DONE = ("applied", "failed", "refused")  # a plan in one of these is never applied (again)
ACTIONS = ("deploy", "rollback", "restore", "config", "devnet-reset", "packages", "service")
SERVICE_ACTIONS = {"start": "started", "stop": "stopped", "restart": "restarted"}
PACKAGE_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9.+_:~-]{0,127}\Z")
# Inputs, in the order a refusal names them; each is a digest (or the collection's version).
INPUTS = ("inventory", "vars", "policy", "collection", "artifact")
DIFF_LIMIT = 20_000  # characters of one task's diff kept in a plan


# -- the plan record -------------------------------------------------------------------------------


@dataclass
class Plan:
    id: str
    action: str
    args: dict[str, Any]
    inventory: str
    limit: str | None
    created: dt.datetime
    created_by: str
    inputs: dict[str, str]
    inputs_hash: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    status: str = "proposed"
    approvals: list[dict[str, str]] = field(default_factory=list)
    expires: dt.datetime | None = None
    applied: dict[str, Any] | None = None
    # The check run: {run_id, outcome, exit_code, hosts: {host: {changed, failed, unreachable}}, failures}
    check: dict[str, Any] = field(default_factory=dict)
    refused: str = ""  # why the plan can no longer be applied (status refused)

    @property
    def hosts(self) -> list[str]:
        return sorted(self.check.get("hosts") or {})

    def title(self) -> str:
        return f"{self.action} {describe_args(self.action, self.args)}".strip()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created"] = format_time(self.created)
        data["expires"] = format_time(self.expires) if self.expires else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        values = dict(data)
        values["created"] = parse_time(values["created"])
        values["expires"] = parse_time(values["expires"]) if values.get("expires") else None
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_markdown(self) -> str:
        return plan_markdown(self)


def describe_args(action: str, args: Mapping[str, Any]) -> str:
    """The arguments the way the command line takes them, for titles."""
    if action == "deploy":
        return f"{args['service']} {args['version']}"
    if action == "rollback":
        return f"{args['service']} to {args.get('version') or 'previous'}"
    if action == "restore":
        return f"{args['set']}" + (f" ({args['service']})" if args.get("service") else "")
    if action == "packages":
        return " ".join(args["names"])
    if action == "service":
        return f"{args['action']} {args['service']}"
    return ""


def fence(text: str) -> str:
    """A code fence longer than any backtick run inside text, so host output cannot close it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def plan_markdown(plan: Plan) -> str:
    masked = Redactor().redact(plan.args)
    lines = [
        f"# Plan {plan.id}: {one_line(plan.title(), 160)}",
        "",
        f"- **Status:** {plan.status}" + (f" ({one_line(plan.refused, 300)})" if plan.refused else ""),
        f"- **Action:** {plan.action}",
        f"- **Created:** {format_time(plan.created)} by {one_line(plan.created_by, 80)}",
        f"- **Inventory:** {plan.inventory}",
        f"- **Limit:** {plan.limit or '-'}",
        f"- **Expires:** {format_time(plan.expires) if plan.expires else '-'}",
        f"- **Check run:** {plan.check.get('run_id') or '-'} ({plan.check.get('outcome') or '-'})",
        "",
        "## Arguments",
        "",
    ]
    lines += [f"- {k}: {one_line(json.dumps(v, sort_keys=True), 300)}" for k, v in sorted(masked.items())]
    lines += ["", "## Inputs", "", f"- **hash:** {plan.inputs_hash}"]
    lines += [f"- {name}: {plan.inputs.get(name) or '-'}" for name in INPUTS]
    lines += ["", "## Changes", ""]
    by_host: dict[str, list[dict[str, Any]]] = {host: [] for host in plan.hosts}
    for change in plan.changes:
        by_host.setdefault(change["host"], []).append(change)
    if not by_host:
        lines += ["No host was reached.", ""]
    for host, changes in sorted(by_host.items()):
        state = (plan.check.get("hosts") or {}).get(host) or {}
        trouble = " (unreachable)" if state.get("unreachable") else " (failed)" if state.get("failed") else ""
        lines += [f"### {host}{trouble}", ""]
        if not changes:
            lines += ["Nothing would change.", ""]
        for change in changes:
            lines.append(f"- {one_line(change['task'], 200)} ({change.get('action') or '-'})")
            if change.get("diff"):
                mark = fence(change["diff"])
                lines += ["", f"{mark}diff", change["diff"].rstrip("\n"), mark, ""]
        if changes and lines[-1] != "":
            lines.append("")
    for failure in plan.check.get("failures") or []:
        lines.append(f"- failed: {one_line(failure['message'], 300)}")
    if plan.check.get("failures"):
        lines.append("")
    lines += ["## Approvals", ""]
    lines += [
        f"- {one_line(a['by'], 80)} at {a['at']}" + (f": {one_line(a['note'], 300)}" if a.get("note") else "")
        for a in plan.approvals
    ] or ["none"]
    if plan.applied:
        applied = plan.applied
        lines += [
            "",
            "## Applied",
            "",
            f"- {applied['at']} by {one_line(applied['by'], 80)}: {applied['outcome']}"
            f" (run {applied['run_id']})",
        ]
    return "\n".join(lines) + "\n"


# -- the store -------------------------------------------------------------------------------------


def check_id(plan_id: str) -> str:
    """A plan id, checked before it becomes part of a path."""
    if not isinstance(plan_id, str) or not ID_RE.match(plan_id):
        raise BadInput(f"bad plan id {str(plan_id)[:60]!r}: expected PLAN-YYYYMMDD-NNN")
    return plan_id


class PlanStore:
    """ai-memory/plans/PLAN-*.json (read by programs, the record) and .md (for people), written atomically
    under one lock for the folder."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.folder = store.path(PLANS_DIR)

    def _lock(self) -> Any:
        return self.store.locked(PLANS_DIR)

    def _write(self, plan: Plan) -> None:
        atomic_write(self.folder / f"{plan.id}.json", json.dumps(plan.to_dict(), indent=2, sort_keys=True))
        atomic_write(self.folder / f"{plan.id}.md", plan.to_markdown())

    def _read(self, plan_id: str) -> Plan:
        path = self.folder / f"{check_id(plan_id)}.json"
        if not path.is_file():
            raise BadInput(f"unknown plan: {plan_id} (opsrunner plans list shows them)")
        try:
            return Plan.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"plan {plan_id} is unreadable: {one_line(exc, 200)}") from None

    def create(self, plan: Plan) -> Plan:
        """Give the plan the next free id of its day and write it."""
        with self._lock():
            self.folder.mkdir(parents=True, exist_ok=True)
            day = plan.created.astimezone(dt.UTC).strftime("%Y%m%d")
            taken = [int(p.stem[-3:]) for p in self.folder.glob(f"PLAN-{day}-*.json") if ID_RE.match(p.stem)]
            number = max(taken, default=0) + 1
            if number > 999:
                raise BadInput(f"too many plans on {day} (999)")
            plan.id = f"PLAN-{day}-{number:03d}"
            self._write(plan)
        return plan

    def save(self, plan: Plan) -> None:
        with self._lock():
            self._write(plan)

    def get(self, plan_id: str) -> Plan:
        return self._read(plan_id)

    def update(self, plan_id: str, change: Callable[[Plan], None]) -> Plan:
        """Read, change and write one plan as one step (concurrent approvals do not lose each other)."""
        with self._lock():
            plan = self._read(plan_id)
            change(plan)
            self._write(plan)
        return plan

    def list(self, status: str | None = None) -> list[Plan]:
        plans = []
        for path in sorted(self.folder.glob("PLAN-*.json")):
            if not ID_RE.match(path.stem):
                continue
            try:
                plan = Plan.from_dict(json.loads(path.read_text()))
            except (ValueError, KeyError, TypeError):
                continue
            if status is None or plan.status == status:
                plans.append(plan)
        return plans


# -- inputs and their digests ----------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_digest(root: Path, skip: Callable[[Path], bool] = lambda _p: False) -> str:
    """sha256 over every file under root (symlinks followed once), by relative path, sorted."""
    entries: list[tuple[str, str]] = []
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            path = Path(folder) / name
            if name.startswith(".") or skip(path) or not path.is_file():
                continue
            entries.append((path.relative_to(root).as_posix(), sha256_bytes(path.read_bytes())))
    text = "".join(f"{rel}\0{digest}\n" for rel, digest in sorted(entries))
    return sha256_bytes(text.encode())


def inventory_digest(inventory: Path) -> str:
    """An inventory file with the group_vars/ and host_vars/ beside it (Ansible reads those too), or
    every file of an inventory folder; the policy file is an input of its own."""
    if inventory.is_dir():
        return tree_digest(inventory, lambda p: p.parent == inventory and p.name == POLICY_FILE)
    parts = [f"{inventory.name}\0{sha256_bytes(inventory.read_bytes())}\n"]
    for sub in ("group_vars", "host_vars"):
        if (inventory.parent / sub).is_dir():
            parts.append(f"{sub}\0{tree_digest(inventory.parent / sub)}\n")
    return sha256_bytes("".join(parts).encode())


def artifact_digest(artifact: Path) -> str:
    """A release tarball's sha256, or a sha256 over a release folder's files."""
    if artifact.is_dir():
        return tree_digest(artifact)
    if artifact.is_file():
        return sha256_bytes(artifact.read_bytes())
    return "missing"


def collection_version(settings: Settings) -> str:
    try:
        data = yaml.safe_load((settings.project_root / "galaxy.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "unknown"
    return str(data.get("version") or "unknown")


def vars_digest(extra_vars: Mapping[str, Any]) -> str:
    return sha256_bytes(json.dumps(dict(extra_vars), sort_keys=True, default=str).encode())


def compute_inputs(
    settings: Settings, action: str, args: Mapping[str, Any], inventory: Path, policy_digest: str
) -> dict[str, str]:
    return {
        "inventory": inventory_digest(inventory),
        "vars": vars_digest(args.get("extra_vars") or {}),
        "policy": policy_digest,
        "collection": collection_version(settings),
        "artifact": artifact_digest(Path(args["artifact"])) if action == "deploy" else "",
    }


def inputs_hash(inputs: Mapping[str, str]) -> str:
    return sha256_bytes("".join(f"{name}={inputs.get(name, '')}\n" for name in INPUTS).encode())


def changed_inputs(planned: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """Which inputs differ, by name, in INPUTS order."""
    return [name for name in INPUTS if planned.get(name, "") != now.get(name, "")]


# -- actions ---------------------------------------------------------------------------------------


def _text(args: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    value = args.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise BadInput(f"{key} must be a string")
    return str(value)


def _extra_vars(args: Mapping[str, Any]) -> dict[str, Any]:
    """The -e variables of a plan. They are stored in it, on disk: secret-named ones are refused."""
    extra = args.get("extra_vars") or {}
    if not isinstance(extra, Mapping):
        raise BadInput("extra_vars must be a mapping")
    secret = sorted(name for name in extra if is_secret_name(str(name)))
    if secret:
        raise BadInput(f"-e {secret[0]} looks secret and a plan is kept on disk: put it in the vault instead")
    return dict(extra)


def normalize_args(action: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The action's arguments, checked and with their defaults, as a plan keeps them (BadInput if bad)."""
    if action == "deploy":
        version, serial = _text(args, "version") or "", _text(args, "serial", "1") or "1"
        problem = request_error(version, serial)
        if problem:
            raise BadInput(problem)
        artifact = Path(_text(args, "artifact") or "")
        if not str(artifact) or not artifact.exists():
            raise BadInput(f"artifact not found: {artifact}")
        return {
            "version": version,
            "artifact": str(artifact.absolute()),
            "service": _text(args, "service", "coordinator-api"),
            "serial": serial,
            "extra_vars": _extra_vars(args),
        }
    if action == "rollback":
        version = _text(args, "version")
        if version is not None and request_error(version, "1"):
            raise BadInput(request_error(version, "1"))
        return {"version": version, "service": _text(args, "service", "coordinator-api")}
    if action == "restore":
        set_name, dest = _text(args, "set") or "", _text(args, "dest")
        if not set_name:
            raise BadInput("restore needs a backup set (a name, or newest)")
        if dest is not None and not dest.startswith("/"):
            raise BadInput(f"--dest must be an absolute path on the hosts: {dest!r}")
        confirm = bool(args.get("confirm"))
        if not confirm and not dest:
            raise BadInput(f"refusing to plan a restore of {set_name} without --confirm (or --dest DIR)")
        return {"set": set_name, "confirm": confirm, "dest": dest, "service": _text(args, "service")}
    if action in ("config", "devnet-reset"):
        return {"extra_vars": _extra_vars(args)}
    if action == "packages":
        names = args.get("names") or []
        if not isinstance(names, list | tuple) or not names:
            raise BadInput("packages needs at least one package name")
        bad = [n for n in names if not isinstance(n, str) or not PACKAGE_RE.match(n)]
        if bad:
            raise BadInput(f"bad package name {str(bad[0])[:60]!r}")
        return {"names": sorted(set(names))}
    if action == "service":
        verb, name = _text(args, "action") or "", _text(args, "service") or ""
        if verb not in SERVICE_ACTIONS:
            raise BadInput(f"service action must be one of {', '.join(SERVICE_ACTIONS)}: {verb!r}")
        if not name:
            raise BadInput("service needs a service name")
        return {"action": verb, "service": name}
    raise BadInput(f"unknown plan action {action!r}: one of {', '.join(ACTIONS)}")


def policy_action(action: str, args: Mapping[str, Any]) -> str:
    """The policy's name for an action (policy.ACTIONS): `service stop` is service-stop."""
    return f"service-{args['action']}" if action == "service" else action


def affected_services(action: str, args: Mapping[str, Any]) -> list[str]:
    """The services a change touches, for its maintenance window ([] = all on its hosts)."""
    if action in ("deploy", "rollback", "service"):
        return [args["service"]]
    if action == "restore" and args.get("service"):
        return [args["service"]]
    return []


def action_request(
    settings: Settings,
    action: str,
    args: Mapping[str, Any],
    inventory: Path,
    limit: str | None,
    *,
    check: bool,
) -> RunRequest:
    """The run of a (normalized) action: the same playbook and variables as its direct command."""
    playbook, variables, event = _playbook_and_vars(action, args)
    path = settings.playbook_path(playbook)
    return RunRequest(
        playbook=path,
        inventory=inventory,
        limit=limit,
        check=check,
        diff=check,
        extra_vars=variables,
        event=event or playbook_event(path.name),
    )


def _playbook_and_vars(action: str, args: Mapping[str, Any]) -> tuple[str, dict[str, Any], str | None]:
    if action == "deploy":
        return (
            "deploy.yml",
            {
                **args["extra_vars"],
                "deploy_version": args["version"],
                "deploy_artifact": args["artifact"],
                "deploy_service": args["service"],
                "deploy_serial": args["serial"],
            },
            None,
        )
    if action == "rollback":
        variables = {"deploy_service": args["service"]}
        if args.get("version"):
            variables["deploy_version"] = args["version"]
        return "rollback.yml", variables, None
    if action == "restore":
        variables: dict[str, Any] = {"restore_set": args["set"], "restore_confirm": args["confirm"]}
        if args.get("dest"):
            variables["restore_dest"] = args["dest"]
        if args.get("service"):
            variables["restore_items"] = [args["service"]]
        return "restore.yml", variables, None
    if action == "config":
        return "config.yml", dict(args["extra_vars"]), None
    if action == "devnet-reset":  # the plan is the confirmation the playbook asks for
        return "devnet_reset.yml", {**args["extra_vars"], "devnet_reset_confirm": True}, None
    if action == "packages":
        return "packages.yml", {"packages_names": list(args["names"]), "packages_state": "present"}, None
    state = SERVICE_ACTIONS[args["action"]]
    return (
        "service.yml",
        {"service_name": args["service"], "service_state": state},
        f"service {args['action']}",
    )


def check_outcome(request: RunRequest, outcome: RunOutcome) -> None:
    """What the direct commands treat as bad input (exit 2) is bad input here too."""
    record = outcome.record
    if request.limit and not record.hosts and record.config_error is None and not record.failures:
        raise BadInput(f"--limit {request.limit}: no host of the inventory matches it")
    message = first_bad_request(record.failures) or record.config_error
    if message:
        raise BadInput(message)


# -- what a check run would change -----------------------------------------------------------------


def render_diff(diff: Any) -> str:
    """Ansible's diff result (a dict or a list of them: before/after with headers, or `prepared`) as
    unified diff text."""
    parts = diff if isinstance(diff, list) else [diff]
    out: list[str] = []
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        if part.get("prepared"):
            out.append(str(part["prepared"]).rstrip("\n") + "\n")
            continue
        if "before" not in part and "after" not in part:
            continue
        before, after = _diff_side(part.get("before")), _diff_side(part.get("after"))
        if before == after:
            continue
        lines = difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=str(part.get("before_header") or "before"),
            tofile=str(part.get("after_header") or "after"),
        )
        out.append("".join(line if line.endswith("\n") else line + "\n" for line in lines))
    text = "".join(out)
    return text if len(text) <= DIFF_LIMIT else text[:DIFF_LIMIT] + "\n… (diff cut)\n"


def _diff_side(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, sort_keys=True, default_flow_style=False, allow_unicode=True)


class ChangeCollector:
    """The runner's on_event hook for a check run: each task that would change, per host, with its diff.
    The events it sees are already redacted by the run's redactor."""

    def __init__(self) -> None:
        self.changes: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event") != "runner_on_ok":
            return
        data = event.get("event_data") or {}
        res = data.get("res") or {}
        if not isinstance(res, Mapping) or not res.get("changed"):
            return
        diffs = [res.get("diff")] if res.get("diff") else []
        for item in res.get("results") or []:  # a loop: each item's diff
            if isinstance(item, Mapping) and item.get("changed") and item.get("diff"):
                diffs.append(item["diff"])
        self.changes.append(
            {
                "host": str(data.get("host", "?")),
                "task": str(data.get("task", "")),
                "action": str(data.get("task_action", "")),
                "changed": True,
                "diff": "".join(render_diff(d) for d in diffs),
            }
        )


def check_summary(record: RunRecord, exit_code: int) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "outcome": record.outcome,
        "exit_code": exit_code,
        "hosts": {
            host: {"changed": s.changed, "failed": s.failed, "unreachable": s.unreachable}
            for host, s in sorted(record.hosts.items())
        },
        "failures": [{"host": f.host, "message": f.describe()} for f in record.failures],
    }


# -- the policy ------------------------------------------------------------------------------------


def load_policy(inventory: str | Path) -> Policy:
    """The policy beside an inventory (none without an ops-policy.yml)."""
    return Policy.load(Path(inventory))


def approval_required(policy: Policy, plan: Plan) -> bool:
    """Whether the policy needs an approved plan for this one (packages only when one is not allowed)."""
    action = policy_action(plan.action, plan.args)
    if action not in POLICY_ACTIONS or not policy.needs_plan(action):
        return False
    if plan.action == "packages":
        return not all(policy.package_allowed(name) for name in plan.args["names"])
    return True


# -- the three steps -------------------------------------------------------------------------------


def resolve_inventory(settings: Settings, inventory: str | Path | None) -> Path:
    path = Path(inventory).absolute() if inventory else settings.default_inventory
    if not path.exists():
        raise BadInput(f"inventory not found: {path}")
    return path


def make_plan(
    settings: Settings,
    store: MemoryStore,
    action: str,
    args: Mapping[str, Any],
    inventory: str | Path | None,
    limit: str | None,
    by: str,
) -> Plan:
    """Run the action in check and diff mode and write its plan (status proposed)."""
    by = check_name(by)
    normalized = normalize_args(action, args)
    inv = resolve_inventory(settings, inventory)
    policy = load_policy(inv)
    request = action_request(settings, action, normalized, inv, limit, check=True)
    collector = ChangeCollector()
    outcome = Runner(settings, store).run(request, on_event=collector)
    check_outcome(request, outcome)
    inputs = compute_inputs(settings, action, normalized, inv, policy.digest())
    plan = Plan(
        id="",
        action=action,
        args=normalized,
        inventory=str(inv),
        limit=limit,
        created=utcnow(),
        created_by=by,
        inputs=inputs,
        inputs_hash=inputs_hash(inputs),
        changes=collector.changes,
        check=check_summary(outcome.record, outcome.record.exit_code),
    )
    PlanStore(store).create(plan)
    _daily(
        store, "plan", plan, f"proposed by {by}; check run {outcome.record.outcome}", [outcome.record.run_id]
    )
    return plan


NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._@:+-]{0,63}\Z")


def check_name(name: str) -> str:
    """A person's or client's name (alice, mcp:claude): it goes into records as is."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BadInput(f"bad name {str(name)[:60]!r}: letters, digits and . _ @ : + - (at most 64)")
    return name


def approve(store: MemoryStore, policy: Policy, plan_id: str, by: str, note: str = "") -> Plan:
    """Approve a plan where the policy names `by` as an approver; the approval lasts approval_ttl."""
    check_id(plan_id)
    by = check_name(by)
    if not policy.may_approve(by):
        listed = ", ".join(policy.approvers) or "anyone"
        raise BadInput(f"{by} may not approve plans: the policy's approvers are {listed}")
    note = Redactor().redact_text(one_line(note, 500)) if note else ""

    def record(plan: Plan) -> None:
        if plan.status in DONE:
            raise BadInput(f"plan {plan.id} is {plan.status}: it cannot be approved (make a new plan)")
        now = utcnow()
        plan.approvals.append({"by": by, "at": format_time(now), "note": note})
        plan.status = "approved"
        plan.expires = now + policy.approval_ttl

    plan = PlanStore(store).update(plan_id, record)
    _daily(
        store, "approve", plan, f"approved by {by} until {format_time(plan.expires)}", [note] if note else []
    )
    return plan


def refusal(plan: Plan, policy: Policy, now_inputs: Mapping[str, str], now: dt.datetime) -> tuple[str, bool]:
    """Why the plan may not be applied now ('' if it may), and whether that makes it stale for good."""
    if plan.status in DONE:
        run = (plan.applied or {}).get("run_id")
        return f"plan {plan.id} is {plan.status}" + (
            f" (run {run})" if run else ""
        ) + ": make a new plan", False
    stale = changed_inputs(plan.inputs, now_inputs)
    if stale:
        named = ", ".join(f"{name} changed" for name in stale)
        return f"plan {plan.id} no longer matches its inputs: {named}; make a new plan", True
    if approval_required(policy, plan):
        action = policy_action(plan.action, plan.args)
        if plan.status != "approved":
            return (
                f"plan {plan.id} is not approved: the policy needs an approved plan for {action} "
                f"(opsrunner approve {plan.id} --by NAME)",
                False,
            )
        if plan.expires is None or plan.expires <= now:
            when = format_time(plan.expires) if plan.expires else "-"
            return f"the approval of plan {plan.id} expired at {when}: approve it again", False
    return "", False


def apply(
    settings: Settings,
    store: MemoryStore,
    plan_id: str,
    by: str,
    override_freeze: bool = False,
    reason: str = "",
) -> tuple[Plan, RunOutcome]:
    """Run an approved (where the policy asks), unexpired plan whose inputs are unchanged, inside a Change;
    mark it applied or failed and write its decision record. BadInput, nothing changed, otherwise."""
    by = check_name(by)
    plans = PlanStore(store)
    plan = plans.get(plan_id)
    inv = Path(plan.inventory)
    if not inv.exists():
        raise BadInput(f"plan {plan.id}: its inventory is gone ({inv}); make a new plan")
    policy = load_policy(inv)
    with _applying(store, plan.id):
        plan = plans.get(plan_id)  # as it is now that this process holds it
        now_inputs = compute_inputs(settings, plan.action, plan.args, inv, policy.digest())
        why, stale = refusal(plan, policy, now_inputs, utcnow())
        if why:
            if stale:
                plans.update(plan.id, lambda p: _mark_refused(p, why))
            _daily(store, "apply", plan, f"refused: {why}", [], outcome="refused")
            raise BadInput(why)
        request = action_request(settings, plan.action, plan.args, inv, plan.limit, check=False)
        outcome = _run_change(settings, store, plan, policy, request, by, override_freeze, reason)
        record = outcome.record
        status = "applied" if record.exit_code == 0 else "failed"
        applied = {"at": format_time(utcnow()), "by": by, "run_id": record.run_id, "outcome": record.outcome}

        def mark(p: Plan) -> None:
            p.status, p.applied = status, applied

        plan = plans.update(plan.id, mark)
    store.write_decision(plan_decision(plan, record))
    _daily(store, "apply", plan, f"{status} by {by} (run {record.run_id})", [], outcome=record.outcome)
    return plan, outcome


def _run_change(
    settings: Settings,
    store: MemoryStore,
    plan: Plan,
    policy: Policy,
    request: RunRequest,
    by: str,
    override_freeze: bool,
    reason: str,
) -> RunOutcome:
    """The real run, inside a Change (freeze check, maintenance window, announcements) for the actions
    the policy knows; a service start or restart is not one of them and runs as it is."""
    action = policy_action(plan.action, plan.args)
    if action not in POLICY_ACTIONS:
        return Runner(settings, store).run(request)
    with Change(
        settings,
        store,
        Path(plan.inventory),
        action,
        limit=plan.limit,
        services=affected_services(plan.action, plan.args),
        reason=reason if override_freeze else f"plan {plan.id}",
        override_freeze=override_freeze,
        title=f"{plan.title()} ({plan.id})",
        by=by,
        policy=policy,
    ) as change:
        outcome = Runner(settings, store).run(request)
        change.outcome = outcome.record.outcome
    return outcome


def apply_plan(
    settings: Settings,
    store: MemoryStore,
    plan_id: str,
    by: str,
    override_freeze: bool = False,
    reason: str = "",
) -> tuple[Plan, int]:
    """apply(), with the run's exit code instead of its outcome (for the MCP server)."""
    plan, outcome = apply(settings, store, plan_id, by, override_freeze, reason)
    return plan, outcome.record.exit_code


def _mark_refused(plan: Plan, why: str) -> None:
    if plan.status not in DONE:
        plan.status, plan.refused = "refused", why


class _Applying:
    """One apply of a plan at a time: a second one is refused at once instead of waiting."""

    def __init__(self, store: MemoryStore, plan_id: str) -> None:
        lock_dir = store.path(".locks")
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.plan_id = plan_id
        self.lock = FileLock(str(lock_dir / f"{PLANS_DIR}__{plan_id}.apply.lock"), timeout=0)

    def __enter__(self) -> None:
        try:
            self.lock.acquire()
        except Timeout:
            raise BadInput(f"plan {self.plan_id} is being applied by another process") from None

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def _applying(store: MemoryStore, plan_id: str) -> _Applying:
    return _Applying(store, plan_id)


def plan_decision(plan: Plan, record: RunRecord) -> Decision:
    """The change record of an applied plan."""
    if plan.approvals:
        rationale = "Approved by " + "; ".join(
            f"{a['by']} at {a['at']}" + (f" ({a['note']})" if a.get("note") else "") for a in plan.approvals
        )
    else:
        rationale = "Applied without approval: the policy asks for none for this action"
    rationale += f". Plan {plan.id} was made by {plan.created_by} at {format_time(plan.created)}."
    would = len(plan.changes)
    changed = sum(s.changed for s in record.hosts.values())
    return Decision(
        decision=f"Applied {plan.id}: {plan.title()}",
        date=utcnow(),
        kind="plan",
        context=(
            f"{plan.action} on {plan.inventory}"
            + (f" (limit {plan.limit})" if plan.limit else "")
            + f"; the check run said {would} task(s) would change; inputs hash {plan.inputs_hash}."
        ),
        rationale=rationale,
        impact=f"Run {record.run_id}: {record.outcome}, {changed} task(s) changed.",
        hosts=sorted(record.hosts),
        outcome=plan.status,
        run_id=record.run_id,
        details=[f"{name}: {plan.inputs.get(name) or '-'}" for name in INPUTS]
        + [f.describe() for f in record.failures],
    )


def _daily(
    store: MemoryStore, event: str, plan: Plan, actions: str, details: list[str], outcome: str | None = None
) -> None:
    store.ensure_layout()
    store.append_daily(
        DailyEntry(
            time=utcnow(),
            event=event,
            title=f"{plan.id}: {plan.title()}",
            outcome=outcome or plan.status,
            hosts=plan.hosts,
            actions=actions,
            details=details,
            run_id=str((plan.applied or {}).get("run_id") or plan.check.get("run_id") or ""),
            source="opsrunner",
        )
    )


# -- reports ---------------------------------------------------------------------------------------


def junit_xml(name: str, summary: Mapping[str, Any], changes: list[dict[str, Any]]) -> str:
    """One testcase per host of a run summary (check_summary): a failure where the host failed or was
    unreachable; the tasks that would change (or changed) in its output."""
    import xml.etree.ElementTree as ET

    suite = ET.Element("testsuite", name=name)
    failed: dict[str, str] = {}
    for failure in summary.get("failures") or []:
        failed.setdefault(failure["host"], failure["message"])
    hosts_state = summary.get("hosts") or {}
    hosts = sorted(set(hosts_state) | set(failed))
    failures = 0
    for host in hosts:
        case = ET.SubElement(suite, "testcase", classname=host, name=name)
        state = hosts_state.get(host) or {}
        if host in failed or state.get("failed") or state.get("unreachable"):
            failures += 1
            message = failed.get(host, "failed")
            ET.SubElement(case, "failure", message=message[:500]).text = message
        tasks = [c["task"] for c in changes if c["host"] == host]
        if tasks:
            ET.SubElement(case, "system-out").text = "\n".join(tasks)
    suite.set("tests", str(len(hosts)))
    suite.set("failures", str(failures))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
