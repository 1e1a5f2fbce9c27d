"""Finding secret values among Ansible variables, for the Redactor.

Both adapters use this: the callback plugin on the variables of each play it sees, and the runner on
the same variables loaded with Ansible's own API (in a thread, while the run starts). A value is
secret when it came out of ansible-vault, or when its variable's name looks secret.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .redact import Redactor, is_secret_name, iter_strings

# Variables Ansible adds to every host; they hold no user secrets and are large.
SKIPPED_VARS = frozenset({"hostvars", "groups", "group_names", "omit", "playbook_dir", "ansible_config_file"})


def is_vaulted(value: Any) -> bool:
    """True for vault-encrypted values: ansible-core >= 2.19 tags, and the older wrapper class."""
    try:
        from ansible.parsing.vault import VaultHelper  # ansible-core >= 2.19

        if VaultHelper.get_ciphertext(value, with_tags=False) is not None:
            return True
    except ImportError:
        pass
    return type(value).__name__ in ("AnsibleVaultEncryptedUnicode", "EncryptedString")


def plain(value: Any) -> str | None:
    """The decrypted text of a vaulted value, or None when it cannot be decrypted here."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - an undecryptable value simply cannot leak through us
        return None


def secret_values(variables: Mapping[str, Any], templar: Any | None = None) -> Iterator[str]:
    """Every secret string among a host's variables."""
    for name, value in variables.items():
        if name in SKIPPED_VARS:
            continue
        yield from _secrets_in(str(name), value, templar, secret_name=False)


def _secrets_in(name: str, value: Any, templar: Any | None, *, secret_name: bool) -> Iterator[str]:
    secret_name = secret_name or is_secret_name(name)
    if is_vaulted(value):
        text = plain(value)
        if text is not None:
            yield text
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secrets_in(str(key), item, templar, secret_name=secret_name)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secrets_in(name, item, templar, secret_name=secret_name)
    elif secret_name and isinstance(value, str):
        rendered = _render(value, templar)
        if rendered is not None:
            yield from iter_strings(rendered)


def _render(value: str, templar: Any | None) -> Any | None:
    if "{{" not in value and "{%" not in value:
        return value
    if templar is None:
        return None
    try:
        return templar.template(value)
    except Exception:  # noqa: BLE001 - an unresolvable template holds no value to hide
        return None


def redactor_for_environment(environ: Mapping[str, str] | None = None) -> Redactor:
    """A Redactor seeded with the secret-named environment variables."""
    redactor = Redactor()
    redactor.add_from_mapping(dict(environ if environ is not None else os.environ))
    return redactor


# Variables the recorder needs on the controller (page routes, the tracker and its key may come from vault).
CONTEXT_VARS = (
    "aitbc_alert_urls",
    "aitbc_paging",
    "aitbc_tracker",
    "aitbc_heartbeat_ping_url",
    "aitbc_announce_urls",
)


# The context key of the inventory's hosts: {inventory name: [the name, its ansible_host when set]}, so that
# a report naming a host by its address (Prometheus's `instance`) finds the inventory host.
INVENTORY_HOSTS = "inventory_hosts"


class SecretDiscoveryError(Exception):
    """The secrets of a run could not be discovered (so the run must not start)."""


class Discovery:
    """secrets_from_playbook() in a forked process: Ansible's global state (CLI context, plugin loader,
    vault secrets) stays out of the caller, and a discovery that hangs is killed. The process is forked
    when this is made (from the main thread, before the run starts any of its own), and works while
    ansible-playbook starts; `result()` waits for it. The values come back over a pipe, never a file."""

    def __init__(
        self,
        playbook: Path,
        inventory: Path,
        vault_password_files: Iterable[str] = (),
        limit: str | None = None,
    ) -> None:
        fork = multiprocessing.get_context("fork")
        self._receive, send = fork.Pipe(duplex=False)
        args = (playbook, inventory, tuple(vault_password_files), limit)
        self._child = fork.Process(target=_discover_into, args=(send, *args), daemon=True)
        self._child.start()
        send.close()
        self._started = time.monotonic()
        self._outcome: tuple[Any, ...] | None = None

    def result(self, timeout: float = 120) -> tuple[set[str], dict[str, Any]]:
        """(secret values, context vars); a failure, or ``timeout`` s from the start: SecretDiscoveryError."""
        if self._outcome is None:
            self._outcome = self._wait(timeout)
        if self._outcome[0] != "ok":
            raise SecretDiscoveryError(self._outcome[1])
        return self._outcome[1], self._outcome[2]

    def _wait(self, timeout: float) -> tuple[Any, ...]:
        try:
            left = max(0.0, timeout - (time.monotonic() - self._started))
            if not self._receive.poll(left):
                return ("error", f"it took over {timeout:g} s")
            try:
                return tuple(self._receive.recv())
            except EOFError:
                return ("error", f"the discovery process died (exit {self._child.exitcode})")
        finally:
            self._receive.close()
            if self._child.is_alive():
                self._child.kill()
            self._child.join()


def discover_secrets(
    playbook: Path,
    inventory: Path,
    vault_password_files: Iterable[str] = (),
    limit: str | None = None,
    timeout: float = 120,
) -> tuple[set[str], dict[str, Any]]:
    """Discovery(...).result(timeout): every secret of a run, or SecretDiscoveryError."""
    return Discovery(playbook, inventory, vault_password_files, limit).result(timeout)


def _discover_into(
    send: Any, playbook: Path, inventory: Path, vault_password_files: tuple[str, ...], limit: str | None
) -> None:
    """The forked discovery: one message, ("ok", values, context) or ("error", first line of the error)."""
    # Collections imported as plain packages before the fork (tests do) would hide Ansible's collection
    # finder, which resolves collection playbooks: this process starts from a clean slate.
    for name in [m for m in sys.modules if m.partition(".")[0] == "ansible_collections"]:
        del sys.modules[name]
    try:
        values, context = secrets_from_playbook(playbook, inventory, vault_password_files, limit)
        send.send(("ok", values, context))
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the parent must hear of it
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        send.send(("error", f"{type(exc).__name__}: {first_line}".rstrip(": ")))
    finally:
        send.close()


def secrets_from_playbook(
    playbook: Path,
    inventory: Path,
    vault_password_files: Iterable[str] = (),
    limit: str | None = None,
) -> tuple[set[str], dict[str, Any]]:
    """Load inventory and playbook as ansible-playbook would; return every secret value, and the
    CONTEXT_VARS as the first host that defines them sees them, and the inventory's hosts with their
    addresses (INVENTORY_HOSTS)."""
    from ansible import context
    from ansible.cli import CLI
    from ansible.inventory.manager import InventoryManager
    from ansible.module_utils.common.collections import ImmutableDict
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    _init_plugin_loader()
    if not context.CLIARGS:
        context.CLIARGS = ImmutableDict(
            {"extra_vars": (), "vault_ids": (), "vault_password_files": tuple(vault_password_files)}
        )
    loader = DataLoader()
    vault_secrets = CLI.setup_vault_secrets(
        loader,
        vault_ids=[],
        vault_password_files=list(vault_password_files),
        ask_vault_pass=False,
        auto_prompt=False,
    )
    loader.set_vault_secrets(vault_secrets)
    manager = InventoryManager(loader=loader, sources=[str(inventory)])
    if limit:
        manager.subset(limit)
    variables = VariableManager(loader=loader, inventory=manager)
    found: set[str] = set()
    context: dict[str, Any] = {}
    addresses: dict[str, str] = {}  # host -> its ansible_host, as the first play that reaches it sees it
    for play in play_headers(Path(playbook), loader, variables):
        # A templated pattern is only known inside the run: every host is a safe superset.
        pattern = "all" if "{{" in str(play.hosts) else play.hosts
        for host in manager.get_hosts(pattern):
            host_vars = variables.get_vars(play=play, host=host, include_hostvars=False)
            found |= set(vars_secrets(host_vars, loader, context))
            if host.name not in addresses:
                addresses[host.name] = host_address(host_vars, loader)
    # Every host of the inventory, the limit aside; one no play reached has its inventory-file address.
    everyone = list(manager.hosts.values())
    for host in everyone:
        addresses.setdefault(host.name, _plain_address(host.vars.get("ansible_host")))
    context[INVENTORY_HOSTS] = inventory_hosts([host.name for host in everyone], addresses)
    return found, context


def inventory_hosts(names: Iterable[str], addresses: Mapping[str, str]) -> dict[str, list[str]]:
    """{name: [name, address]} (the address only when set and not the name itself)."""
    hosts: dict[str, list[str]] = {}
    for name in names:
        address = addresses.get(name, "")
        hosts[name] = [name, address] if address and address != name else [name]
    return hosts


def hosts_known_as(hosts: Mapping[str, list[str]], name: str) -> list[str]:
    """The inventory hosts a report's host name means: the host of that inventory name, else every host
    whose address it is (exact, case-sensitive; several when hosts share an address)."""
    if name in hosts:
        return [name]
    return sorted(host for host, aliases in hosts.items() if name in aliases)


def host_address(host_vars: Mapping[str, Any], loader: Any) -> str:
    """A host's ansible_host, rendered ("" when unset or not a plain name)."""
    value = host_vars.get("ansible_host")
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        from ansible.template import Templar

        value = _render(value, Templar(loader=loader, variables=host_vars))
    return _plain_address(value)


def _plain_address(value: Any) -> str:
    text = plain(value) if isinstance(value, str) or is_vaulted(value) else None
    return text.strip() if text and text.strip() and len(text) <= 255 else ""


# The parts of a play that define variables; tasks are skipped because loading them costs far more
# than the variables they can't define (role vars are not seen: keep secrets in vault or group_vars).
PLAY_VAR_KEYS = ("name", "hosts", "vars", "vars_files")


IMPORT_KEYS = ("import_playbook", "ansible.builtin.import_playbook", "ansible.legacy.import_playbook")
MAX_IMPORT_DEPTH = 10


def play_headers(
    playbook: Path,
    loader: Any,
    variables: Any,
    depth: int = 0,
    import_vars: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """Each play of a playbook (following import_playbook: files, and collection playbooks by name)
    loaded without its tasks. A shape it cannot follow raises: its secrets would go unseen."""
    from ansible.playbook.play import Play

    loader.set_basedir(str(playbook.parent))
    entries = loader.load_from_file(str(playbook)) or []
    if not isinstance(entries, list):
        raise ValueError(f"{playbook}: a playbook is a list of plays")
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise ValueError(f"{playbook}: a play is a mapping, not {type(entry).__name__}")
        imported = next((entry[key] for key in IMPORT_KEYS if key in entry), None)
        if imported is not None:
            if depth >= MAX_IMPORT_DEPTH:
                raise ValueError(f"{playbook}: import_playbook nested over {MAX_IMPORT_DEPTH} deep")
            # As Ansible does: the import's vars apply to every imported play, over the play's own.
            merged = {**(import_vars or {}), **dict(entry.get("vars") or {})}
            target = imported_playbook(playbook, imported)
            yield from play_headers(target, loader, variables, depth + 1, merged)
            loader.set_basedir(str(playbook.parent))
        elif "hosts" in entry:
            header = {key: entry[key] for key in PLAY_VAR_KEYS if key in entry}
            if import_vars:
                header["vars"] = {**dict(header.get("vars") or {}), **import_vars}
            yield Play.load(header, variable_manager=variables, loader=loader)


def imported_playbook(importer: Path, name: Any) -> Path:
    """The file an import_playbook names: a collection playbook (ns.coll.name), else a path relative to
    the importing playbook."""
    from ansible.utils.collection_loader._collection_finder import _get_collection_playbook_path

    text = str(name)
    if not isinstance(name, str) or "{{" in text or "{%" in text:
        raise ValueError(f"{importer}: import_playbook {text!r} is only known inside the run")
    resource = _get_collection_playbook_path(text)
    if resource is not None:
        return Path(resource[1])
    path = (importer.parent / text).resolve()
    if not path.is_file():
        raise ValueError(f"{importer}: imported playbook not found: {text}")
    return path


_plugin_loader_ready = False


def _init_plugin_loader() -> None:
    """Install Ansible's collection loader in this process once, as the ansible CLIs do at start."""
    global _plugin_loader_ready
    if not _plugin_loader_ready:
        from ansible.plugins.loader import init_plugin_loader

        init_plugin_loader()
        _plugin_loader_ready = True


def host_secrets(
    variable_manager: Any, loader: Any, play: Any, host: Any, context: dict[str, Any] | None = None
) -> Iterator[str]:
    """The secret values one host sees in one play (used by both adapters); fills `context` with
    the CONTEXT_VARS it finds first."""
    host_vars = variable_manager.get_vars(play=play, host=host, include_hostvars=False)
    yield from vars_secrets(host_vars, loader, context)


def vars_secrets(
    host_vars: Mapping[str, Any], loader: Any, context: dict[str, Any] | None = None
) -> Iterator[str]:
    """host_secrets() of variables already loaded."""
    from ansible.template import Templar

    templar = Templar(loader=loader, variables=host_vars)
    if context is not None:
        for name in CONTEXT_VARS:
            if name not in context and name in host_vars:
                value = (
                    _render(host_vars[name], templar) if isinstance(host_vars[name], str) else host_vars[name]
                )
                context[name] = _plain_data(templar.template(value) if value is not None else None)
    yield from secret_values(host_vars, templar)


def _plain_data(value: Any) -> Any:
    """Vault-decrypted, tag-free copies (so they survive pickling back from the discovery process)."""
    if isinstance(value, dict):
        return {str(k): _plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_data(v) for v in value]
    if is_vaulted(value) or isinstance(value, str):
        return plain(value)
    return value
