# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Values derived from the service catalogue (``aitbc_catalogue``), as pure functions.

Each filter takes the catalogue (service name -> entry) and the names to consider, in order; names that
are not in the catalogue are skipped. ``placed_services`` gives those names for one host (placement), so
every derived value is per host. The documentation of each filter is in ``plugins/filter/NAME.yml``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ansible.errors import AnsibleFilterError

Catalogue = Mapping[str, Mapping[str, Any]]
Record = dict[str, Any]

# Backends whose processes are not found through the catalogue's pidfile (the manager knows the pid).
MANAGED_BACKENDS = ("systemd", "docker", "supervisor")


def service_order(catalogue: Catalogue, order: Iterable[str], having: str | None = None) -> list[str]:
    """The names of ``order`` that are catalogue services (with a ``having`` key when given), in order."""
    return [name for name in order if name in catalogue and (having is None or having in catalogue[name])]


# Every key a catalogue entry may hold (docs: plugins/filter/checked_catalogue.yml). A key outside it is a
# typo until proven otherwise (`probe:` for `probes:` silently dropped a check); keys of one's own start
# with x_ (for one's own templates).
ENTRY_KEYS = frozenset(
    {
        "app_root", "backend", "backup", "chdir", "command", "config", "config_secrets", "container",
        "data_dir", "databases", "docker_host", "env", "env_file", "groups", "log_file", "log_patterns",
        "migrate_command", "pidfile", "port", "probes", "program", "reads", "running_probe",
        "supervisor_config", "unit", "url",
    }
)  # fmt: skip


def checked_catalogue(catalogue: Any, root: str | None = None) -> dict[str, Record]:
    """The catalogue, checked and completed: every entry a dict of known keys, and each service run by
    the process backend given a pidfile and a log file under ``root`` (``aitbc_root``) when it names none,
    so two inventory hosts on one machine never share them."""
    if not isinstance(catalogue, Mapping):
        raise AnsibleFilterError(
            f"aitbc_services must be a dict of services (name -> entry), not {type(catalogue).__name__}"
        )
    out: dict[str, Record] = {}
    for name, entry in catalogue.items():
        if not isinstance(entry, Mapping):
            raise AnsibleFilterError(f"service {name}: its catalogue entry must be a dict, not {entry!r}")
        unknown = sorted(k for k in entry if k not in ENTRY_KEYS and not str(k).startswith("x_"))
        if unknown:
            hint = "; ".join(_did_you_mean(str(k)) for k in unknown)
            raise AnsibleFilterError(f"service {name}: unknown key {hint} (keys of your own start with x_)")
        # copy(), not dict(): Ansible's lazy dict copies lazily, so a value is templated only when read (an
        # entry may use a variable that only the hosts running it define).
        completed = entry.copy() if hasattr(entry, "copy") else dict(entry)
        if root and _runs_as_process(completed):
            completed.setdefault("pidfile", f"{root}/run/{name}.pid")
            completed.setdefault("log_file", f"{root}/log/{name}.log")
        out[name] = completed
    return out


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, sorted(ENTRY_KEYS), n=1)
    return f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _runs_as_process(entry: Mapping[str, Any]) -> bool:
    backend = entry.get("backend", "auto")
    if backend == "process":
        return True
    manager_keys = ("unit", "container", "program")
    return backend == "auto" and "command" in entry and not any(k in entry for k in manager_keys)


def placed_services(
    catalogue: Catalogue,
    order: Iterable[str] | None,
    host_groups: Iterable[str],
    host_services: Iterable[str] | None = None,
) -> list[str]:
    """The services one host runs, in start order: its own list (``aitbc_host_services``) when it has
    one, else every service whose ``groups`` it is in (a service without ``groups`` runs on every host).

    ``order`` (``aitbc_service_order``) ranks them; services it leaves out follow in catalogue order.
    A name that is not a service, or a ``groups`` that is not a list of names, is a configuration error
    here, so a typo fails the run instead of leaving a service unmanaged."""
    if not isinstance(catalogue, Mapping):
        raise AnsibleFilterError(
            f"aitbc_catalogue must be a dict of services, not {type(catalogue).__name__}"
        )
    ranked = _known(catalogue, "aitbc_service_order", order or [])
    ranked += [name for name in catalogue if name not in ranked]
    if host_services is not None:
        wanted = set(_known(catalogue, "aitbc_host_services", host_services))
        return [name for name in ranked if name in wanted]
    member = set(host_groups or [])
    return [name for name in ranked if _placed_by_groups(name, catalogue[name], member)]


def _known(catalogue: Catalogue, variable: str, names: Iterable[str]) -> list[str]:
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise AnsibleFilterError(f"{variable} must be a list of service names, not {names!r}")
    names = list(names)
    unknown = [name for name in names if name not in catalogue]
    if unknown:
        raise AnsibleFilterError(
            f"{variable}: unknown service {', '.join(map(str, unknown))} (known: {', '.join(catalogue)})"
        )
    return list(dict.fromkeys(names))


def _placed_by_groups(name: str, service: Any, member: set[str]) -> bool:
    if not isinstance(service, Mapping):
        raise AnsibleFilterError(f"service {name}: its catalogue entry must be a dict, not {service!r}")
    groups = service.get("groups")
    if groups is None:
        return True
    if (
        isinstance(groups, str)
        or not isinstance(groups, Sequence)
        or not all(isinstance(g, str) for g in groups)
    ):
        raise AnsibleFilterError(
            f"service {name}: groups must be a list of inventory group names, not {groups!r}"
        )
    return bool(member.intersection(groups))


# What the `service` probe needs of an entry to ask the service's backend for its state.
RUNNING_PROBE_KEYS = ("pidfile", "unit", "container", "program", "port", "command")


def health_probes(catalogue: Catalogue, order: Iterable[str]) -> list[Record]:
    """Every service's probes as aitbc.ops.health takes them: first ``<service> running`` (its backend's
    own state: an orphan answering on its port must not pass for it; ``running_probe: false`` leaves it
    out), then its own probes, named ``<service> <what>``, an http ``path`` joined to its ``url``."""
    out: list[Record] = []
    for name in service_order(catalogue, order):
        service = catalogue[name]
        if service.get("running_probe", True):
            out.append(running_probe(name, service))
        for probe in service.get("probes") or []:
            out.append(_named_probe(name, service, probe))
    return out


def running_probe(name: str, service: Mapping[str, Any]) -> Record:
    """The ``service`` probe of one catalogue entry."""
    probe: Record = {"type": "service", "name": f"{name} running", "service": name}
    probe["backend"] = service.get("backend", "auto")
    probe.update({key: service[key] for key in RUNNING_PROBE_KEYS if service.get(key) not in (None, "")})
    if "port" in probe:
        probe["port"] = _as_int(probe["port"])
    return probe


def _named_probe(name: str, service: Mapping[str, Any], probe: Mapping[str, Any]) -> Record:
    what = probe.get("name", probe.get("path", probe.get("type")))
    if what is None:
        raise AnsibleFilterError(f"service {name}: a probe needs a type, a name or a path: {dict(probe)}")
    extra: Record = {"name": f"{name} {what}", "service": name}
    if "path" in probe:
        if "url" not in service:
            raise AnsibleFilterError(f"service {name}: probe path {probe['path']} needs the service's url")
        extra["url"] = f"{service['url']}{probe['path']}"
    return {**{k: v for k, v in probe.items() if k != "path"}, **extra}


# Ports a URL implies when it names none.
SCHEME_PORTS = {"http": 80, "https": 443, "redis": 6379, "rediss": 6379}
# Probe types whose port, when not given, is their protocol's own.
PROBE_DEFAULT_PORTS = {"redis": 6379}


def owned_ports(catalogue: Catalogue, order: Iterable[str]) -> list[int]:
    """The TCP ports the services in ``order`` own on their host, sorted: each service's ``port`` and
    ``url``, its probes' ``port`` and ``url`` (a redis probe without a port: 6379) and its ``backup``
    entries' ``port``. The listeners security probe allows these (and its own list) on the host."""
    ports: set[int] = set()
    for name in service_order(catalogue, order):
        service = catalogue[name]
        items = [service, *(service.get("probes") or []), *(service.get("backup") or [])]
        for item in items:
            if isinstance(item, Mapping):
                ports.update(_item_ports(item))
    return sorted(port for port in ports if 0 < port <= 65535)


def _item_ports(item: Mapping[str, Any]) -> list[int]:
    found: list[int] = []
    if item.get("port") not in (None, ""):
        found.append(_as_int(item["port"]))
    elif item.get("type") in PROBE_DEFAULT_PORTS:
        found.append(PROBE_DEFAULT_PORTS[item["type"]])
    if item.get("url"):
        found.append(_url_port(str(item["url"])))
    return found


def _url_port(url: str) -> int:
    """The port of ``url`` (its scheme's when it names none); 0 when it names none that parses."""
    try:
        parts = urlsplit(url)
        return parts.port or SCHEME_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:
        return 0


def key_material(catalogue: Catalogue, order: Iterable[str]) -> list[str]:
    """The paths of key material the services in ``order`` hold: their ``backup`` entries of kind
    ``files`` (the wallet keystore), which backups encrypt and the file_mode security probe keeps 0600."""
    paths: list[str] = []
    for name in service_order(catalogue, order):
        for entry in catalogue[name].get("backup") or []:
            if isinstance(entry, Mapping) and entry.get("kind") == "files" and entry.get("path"):
                paths.append(str(entry["path"]))
    return list(dict.fromkeys(paths))


def backup_sources(catalogue: Catalogue, order: Iterable[str]) -> list[Record]:
    """What a host backs up: each service's ``databases`` (SQLite) then its ``backup`` entries."""
    out: list[Record] = []
    for name in service_order(catalogue, order):
        service = catalogue[name]
        out.extend(
            {"kind": "sqlite", "path": path, "service": name} for path in service.get("databases") or []
        )
        out.extend({**source, "service": name} for source in service.get("backup") or [])
    return out


def log_sources(catalogue: Catalogue, order: Iterable[str]) -> list[Record]:
    """aitbc.ops.log_review sources: a service's ``log_file``, else the journal of its systemd unit; its
    ``log_patterns`` (checked here, so a bad one fails before any host is asked) as ``patterns``."""
    out: list[Record] = []
    for name in service_order(catalogue, order):
        service = catalogue[name]
        if service.get("log_file"):
            source: Record = {"service": name, "path": service["log_file"]}
        elif service.get("backend") == "systemd":
            source = {"service": name, "journal_unit": service.get("unit", f"{name}.service")}
        else:
            continue
        if service.get("log_patterns"):
            source["patterns"] = _log_patterns(name, service["log_patterns"])
        out.append(source)
    return out


def _log_patterns(name: str, given: Any) -> Record:
    """A service's ``log_patterns`` ({error: [REGEX...], warning: [...]}, a lone string as a list)."""
    if not isinstance(given, Mapping) or set(given) - {"error", "warning"}:
        raise AnsibleFilterError(
            f"service {name}: log_patterns must be a dict with error and/or warning lists, not {given!r}"
        )
    out: Record = {}
    for kind, texts in given.items():
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
            raise AnsibleFilterError(
                f"service {name}: log_patterns.{kind} must be a list of regular expressions"
            )
        for text in texts:
            try:
                re.compile(text)
            except re.error as exc:
                raise AnsibleFilterError(
                    f"service {name}: log_patterns.{kind}: invalid regular expression {text!r}: {exc}"
                ) from exc
        out[kind] = list(texts)
    return out


def diagnostics_targets(catalogue: Catalogue, names: Iterable[str], journal: bool = True) -> list[Record]:
    """aitbc.ops.diagnostics services: where each service is (pidfile, unit, port, log file).

    The pidfile only for backends that run the process themselves. ``journal``: also read the unit's
    journal when the service has a log file (the heartbeat leaves it out to keep its bundle small)."""
    out: list[Record] = []
    for name in service_order(catalogue, names):
        service = catalogue[name]
        entry: Record = {"name": name}
        if "pidfile" in service and service.get("backend", "auto") not in MANAGED_BACKENDS:
            entry["pidfile"] = service["pidfile"]
        if "unit" in service:
            entry["unit"] = service["unit"]
            if journal:
                entry["journal_unit"] = service["unit"]
        if "port" in service:
            entry["port"] = _as_int(service["port"])
        if "log_file" in service:
            entry["log_file"] = service["log_file"]
        out.append(entry)
    return out


def services_using(
    catalogue: Catalogue, order: Iterable[str], restored: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The services a restore touches, in order: those owning a restored source or reading its target."""
    owners = {item.get("service") for item in restored}
    targets = {item.get("target") for item in restored}
    return [
        name
        for name in service_order(catalogue, order)
        if name in owners or any(path in targets for path in catalogue[name].get("reads") or [])
    ]


def _as_int(value: Any) -> int:
    """Jinja's ``int`` filter: 0 for what does not parse, as the playbooks relied on."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


class FilterModule:
    """aitbc.ops catalogue filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "service_order": service_order,
            "placed_services": placed_services,
            "checked_catalogue": checked_catalogue,
            "health_probes": health_probes,
            "backup_sources": backup_sources,
            "log_sources": log_sources,
            "diagnostics_targets": diagnostics_targets,
            "services_using": services_using,
            "owned_ports": owned_ports,
            "key_material": key_material,
        }
