"""The mutating tools under the same rules as the CLI: a restart within the heartbeat's restart budget (and
counted against it), and plans, approvals and apply through opsrunner.plans and opsrunner.policy.

The budget is the heartbeat's (HeartbeatState.restarts, one per host and service): a restart asked for here
is refused when the heartbeat could not restart the service either (budget spent, or an incident of the
service waits for a person), and one done here counts as the heartbeat's own would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import report
from ..diagnose import PLAIN_HOST_RE, check_host
from ..heartbeat import HeartbeatConfig, HeartbeatState, SettingsError, paused_services, run_lock
from ..incidents import STATE_FILE
from ..memory import MemoryStore
from ..settings import BadInput, Settings
from .guard import Refused
from .ops import Ops

INVENTORY_TIMEOUT_S = 120


def heartbeat_config(settings: Settings, inventory: Path, host: str) -> HeartbeatConfig:
    """The host's heartbeat thresholds as the inventory sets them (heartbeat_max_restarts, ...), over the
    role's defaults, read by ansible-inventory (vault password files as a run's)."""
    binary = Path(sys.executable).parent / "ansible-inventory"
    command = [str(binary if binary.exists() else "ansible-inventory"), "-i", str(inventory), "--host", host]
    for vault_file in settings.vault_password_files:
        command += ["--vault-password-file", vault_file]
    env = {**os.environ, "ANSIBLE_CONFIG": str(settings.ansible_cfg)}
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=INVENTORY_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise BadInput(f"cannot read the heartbeat settings of {host}: {done.stderr.strip()[:300]}")
    variables = json.loads(done.stdout or "{}")
    labels = {
        key.removeprefix("heartbeat_"): value
        for key, value in variables.items()
        if key.startswith("heartbeat_")
        and key.removeprefix("heartbeat_") in HeartbeatConfig.__dataclass_fields__
    }
    labels.pop("scope", None)
    try:
        return HeartbeatConfig.from_labels(labels)
    except SettingsError as exc:
        raise BadInput(f"{host}: {exc}") from None


def budget_refusal(store: MemoryStore, host: str, service: str, config: HeartbeatConfig) -> Refused | None:
    """Why the heartbeat's rules forbid restarting `service` on `host` now, or None."""
    paused = paused_services(store, host)
    if service in paused:
        return Refused(
            f"refused: {host} {service} has an incident that waits for a person (needs guidance, or security)"
        )
    used = HeartbeatState.load(store).restarts_within(host, service, config.restart_window)
    if used >= config.max_restarts:
        return Refused(
            f"refused: restart budget spent ({used} within {config.restart_window} heartbeats)",
            {"restarts": used, "max_restarts": config.max_restarts, "restart_window": config.restart_window},
        )
    return None


def count_restart(store: MemoryStore, host: str, service: str) -> None:
    """Record one restart in the heartbeat's budget, at the current heartbeat (as its remediation does)."""
    store.ensure_layout()
    with store.locked(STATE_FILE):
        state = HeartbeatState.load(store)
        state.restarts.setdefault(f"{host}|{service}", []).append(state.sequence)
        state.save(store)


def service_restart(ops: Ops, host: str, service: str) -> dict[str, Any] | Refused:
    """`opsrunner service restart SERVICE --limit HOST`, within the heartbeat's restart budget."""
    if not PLAIN_HOST_RE.match(host):
        raise BadInput(f"service_restart takes one host name, not a pattern: {host[:60]!r}")
    check_host(host, ops.inventory)
    config = heartbeat_config(ops.settings, ops.inventory, host)
    store = ops.store
    with run_lock(store):  # no heartbeat restarts it meanwhile, and the budget cannot change under us
        refusal = budget_refusal(store, host, service, config)
        if refusal is not None:
            return refusal
        request = ops.request(
            "service.yml",
            limit=host,
            extra_vars={"service_name": service, "service_state": "restarted"},
            event="service restart",
        )
        outcome = ops.run(request)
        # It was tried: it counts, whether or not it worked (as the heartbeat counts a failed restart).
        count_restart(store, host, service)
    record = outcome.record
    services = [
        {"host": r.host, **r.result["service"]}
        for r in record.results
        if isinstance(r.result.get("service"), dict)
    ]
    warnings = [f"{r.host}: {w}" for r in record.results for w in r.result.get("warnings") or []]
    rows = report.service_rows(record)
    return ops.summary(outcome, services=services, warnings=warnings, table=rows)


# -- plans, approvals, apply (opsrunner.plans and opsrunner.policy) -----------------------------------


@dataclass
class ChangeDesk:
    """plan / approve / apply through opsrunner.plans, under the inventory's policy; `by` is mcp:<client>."""

    ops: Ops

    def plan(self, action: str, args: dict[str, Any], limit: str | None, by: str) -> dict[str, Any] | Refused:
        from .. import plans

        made = plans.make_plan(self.ops.settings, self.ops.store, action, args, self.ops.inventory, limit, by)
        data = made.to_dict()
        if plans.approval_required(plans.load_policy(self.ops.inventory), made):
            return Refused(
                f"approval required: {made.id} (the policy needs an approved plan for this change; "
                f"`opsrunner approve {made.id} --by NAME`, then apply it)",
                {"plan": made.id, "approval_required": True, **data},
            )
        return {"plan": made.id, "approval_required": False, **data}

    def approve(self, plan_id: str, note: str, by: str) -> dict[str, Any] | Refused:
        from .. import plans

        policy = plans.load_policy(self.ops.inventory)
        # A client approves only where the policy names it: an empty list (anyone may approve) lets
        # people approve from the CLI, never a client of this server.
        if by not in tuple(policy.approvers):
            return Refused(f"refused: {by} is not among the policy's approvers; nothing was approved")
        return plans.approve(self.ops.store, policy, plan_id, by, note).to_dict()

    def apply(self, plan_id: str, by: str) -> dict[str, Any] | Refused:
        from .. import plans

        found = plans.PlanStore(self.ops.store).get(plans.check_id(plan_id))
        if plans.approval_required(plans.load_policy(found.inventory), found) and found.status != "approved":
            return Refused(
                f"approval required: {found.id} is {found.status}; nothing was changed",
                {"plan": found.id, "approval_required": True},
            )
        done, outcome = plans.apply(self.ops.settings, self.ops.store, found.id, by)
        return self.ops.summary(outcome, plan=done.to_dict())
