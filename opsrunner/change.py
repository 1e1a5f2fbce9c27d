"""A change under the policy: `with Change(...) as change:` around the run that changes the hosts.

On entry: the freeze check (deploys and restores are refused inside a freeze window unless
override_freeze with a reason, which is recorded and announced), a maintenance window on the change's hosts
and services (pages there wait until it closes), and the start announcement. On exit: the window closes
and the end is announced with the outcome: `change.outcome` when the body set it, else what the body ended
with (the CLI's sys.exit code: 0 ok, 1 failed, 2 refused, 3 unreachable; an exception: failed).

`require_plan_or_refuse` is the other half: the direct commands call it first, and refuse (exit 2) where
the policy wants an approved plan, naming the plan command to run instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from .announce import announce
from .ansible_secrets import Discovery, SecretDiscoveryError
from .memory import DailyEntry, MemoryStore, format_time, one_line, utcnow
from .policy import ACTIONS, FreezeWindow, Policy
from .redact import Redactor
from .settings import BadInput, Settings
from .windows import MaintenanceWindow, Windows

log = logging.getLogger(__name__)

# The actions a freeze window refuses (a rollback is recovery: it is announced, never frozen).
FREEZE_ACTIONS = ("deploy", "restore")
# The actions that open a maintenance window (installing packages restarts no service of the catalogue).
WINDOW_ACTIONS = ("deploy", "rollback", "restore", "config", "devnet-reset", "service-stop")
# The playbook whose variables hold the announcement route (as respond.POLICY_PLAYBOOK does for pages).
CONTEXT_PLAYBOOK = "heartbeat.yml"
RESOLVE_TIMEOUT_S = 120
OUTCOMES = {0: "ok", 1: "failed", 2: "refused", 3: "unreachable", 130: "interrupted"}
NEXT_STEPS = "then opsrunner approve PLAN --by NAME and opsrunner apply PLAN"


def require_plan_or_refuse(policy: Policy, action: str, plan_hint: str) -> None:
    """BadInput (exit 2) when the policy needs an approved plan for `action`; `plan_hint` is the plan
    command for this very change (e.g. `opsrunner plan deploy 2 --from web-2.tar.gz`)."""
    if policy.needs_plan(action):
        raise BadInput(
            f"the policy needs an approved plan for {action}: {plan_hint} ... {NEXT_STEPS} "
            f"(policy: {policy.path})"
        )


def freeze_refusal(action: str, window: FreezeWindow) -> str:
    return (
        f"{action} refused: freeze window {window.reason} ({format_time(window.start)} - "
        f"{format_time(window.end)}); use --override-freeze --reason TEXT"
    )


class Change:
    """One change of the hosts, from its freeze check to its end announcement (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        store: MemoryStore,
        inventory: Path,
        action: str,
        *,
        limit: str | None = None,
        hosts: list[str] | None = None,
        services: list[str] | tuple[str, ...] = (),
        reason: str = "",
        override_freeze: bool = False,
        title: str = "",
        by: str = "",
        policy: Policy | None = None,
    ) -> None:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        if override_freeze and not reason.strip():
            raise BadInput("--override-freeze needs --reason TEXT (it is recorded and announced)")
        self.settings, self.store, self.inventory = settings, store, Path(inventory)
        self.action, self.limit, self.hosts = action, limit, list(hosts) if hosts is not None else None
        self.services = list(services)
        self.reason, self.override_freeze, self.by = reason.strip(), override_freeze, by
        self.title = title or action
        self.policy = policy
        self.outcome = ""  # the body may set it; else the exit decides
        self.window: MaintenanceWindow | None = None
        self.freeze: FreezeWindow | None = None
        self.context: dict[str, Any] = {}
        self.redactor = Redactor()
        self.details: list[str] = []

    # -- entry ---------------------------------------------------------------------------------------

    def __enter__(self) -> Change:
        policy = self.policy = self.policy or Policy.load(self.inventory)
        if self.action in FREEZE_ACTIONS:
            self.freeze = policy.frozen(utcnow())
        if self.freeze is not None and not self.override_freeze:
            message = freeze_refusal(self.action, self.freeze)
            self._record("refused", message)
            raise BadInput(message)
        self._load_inventory()
        if self.freeze is not None:
            self._announce(
                "override",
                f"{self.title}: freeze window {self.freeze.reason} overridden by {self.who}: {self.reason}",
            )
        if self.action in WINDOW_ACTIONS:
            self.window = Windows(self.store).open(
                self.title, self.hosts or [], self.services, policy.maintenance_timeout, self.reason
            )
        self._announce("start", self._start_text())
        return self

    @property
    def who(self) -> str:
        return self.by or "the operator"

    def _start_text(self) -> str:
        where = ", ".join(self.hosts or []) or (
            f"hosts matching {self.limit}" if self.limit else "every host"
        )
        text = f"{self.title} started on {where}"
        if self.window is not None:
            text += f" (maintenance window {self.window.id} until {format_time(self.window.closes)})"
        return text + (f"; reason: {self.reason}" if self.reason else "")

    def _load_inventory(self) -> None:
        """The announcement route and secrets (the inventory's variables) and the change's hosts, read
        side by side in forked processes (Ansible's state stays out of this one)."""
        discovery = Discovery(
            self.settings.playbook_path(CONTEXT_PLAYBOOK),
            self.inventory,
            self.settings.vault_password_files,
        )
        resolver = HostResolver(self.inventory, self.limit) if self.hosts is None else None
        try:
            secrets, self.context = discovery.result(RESOLVE_TIMEOUT_S)
            self.redactor.add(secrets)
        except SecretDiscoveryError as exc:
            self.details.append(f"announcements go nowhere: cannot read the inventory: {exc}")
        if resolver is not None:
            self.hosts = resolver.result(RESOLVE_TIMEOUT_S)
            if self.hosts is None:
                self.details.append("the change's hosts are unknown: its maintenance window holds every host")

    # -- exit ----------------------------------------------------------------------------------------

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        outcome = self.outcome or outcome_of(exc)
        if self.window is not None:
            Windows(self.store).close(self.window.id)
        text = f"{self.title} ended: {outcome}"
        if self.window is not None:
            text += f" (maintenance window {self.window.id} closed)"
        self._announce("end", text)

    # -- records -------------------------------------------------------------------------------------

    def _announce(self, phase: str, text: str) -> None:
        try:
            lines = announce(self.store, self.context, self.redactor, phase, self.title, text, self.hosts)
        except Exception as exc:  # noqa: BLE001 - an announcement never stops or hides a change
            lines = [one_line(self.redactor.redact_text(f"announcement {phase} failed: {exc}"))]
        for line in lines:
            if "NOT" in line:
                log.warning("%s", line)
        self.details += lines

    def _record(self, outcome: str, text: str) -> None:
        entry = DailyEntry(
            time=utcnow(),
            event="change",
            title=text,
            outcome=outcome,
            actions=f"{outcome}: {self.title}",
            source="policy",
        )
        try:
            self.store.append_daily(entry)
        except OSError as exc:
            log.warning("refusal not written to the daily memory: %s", exc)


def outcome_of(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return OUTCOMES.get(code, f"exit {code}")
    if isinstance(exc, BadInput):
        return f"refused: {one_line(exc, 160)}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"failed: {type(exc).__name__}"


class HostResolver:
    """The inventory's hosts that `limit` matches, listed by Ansible in a forked process; `result()` is
    None when they could not be told (an inventory Ansible cannot read, a timeout)."""

    def __init__(self, inventory: Path, limit: str | None) -> None:
        fork = multiprocessing.get_context("fork")
        self._receive, send = fork.Pipe(duplex=False)
        self._child = fork.Process(target=_hosts_into, args=(send, str(inventory), limit), daemon=True)
        self._child.start()
        send.close()

    def result(self, timeout: float) -> list[str] | None:
        try:
            if not self._receive.poll(timeout):
                return None
            try:
                found = self._receive.recv()
            except EOFError:
                return None
        finally:
            self._receive.close()
            if self._child.is_alive():
                self._child.kill()
            self._child.join()
        return [str(h) for h in found] if isinstance(found, list) else None


def _hosts_into(send: Any, inventory: str, limit: str | None) -> None:
    for name in [m for m in sys.modules if m.partition(".")[0] == "ansible_collections"]:
        del sys.modules[name]  # as ansible_secrets does: Ansible's collection finder must be in charge
    try:
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader

        from .ansible_secrets import _init_plugin_loader

        _init_plugin_loader()
        manager = InventoryManager(loader=DataLoader(), sources=[inventory])
        if limit:
            manager.subset(limit)
        send.send(sorted(host.name for host in manager.get_hosts("all")))
    except BaseException:  # noqa: BLE001 - the parent hears None and holds every host
        send.send(None)
    finally:
        send.close()
