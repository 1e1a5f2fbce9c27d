"""Values derived from the service catalogue (plugins/filter/catalogue.py), as the playbooks use them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.aitbc.ops.plugins.filter import catalogue as cat

ORDER = ["redis", "api", "node", "rpc", "web", "box"]

CATALOGUE: dict[str, dict[str, Any]] = {
    "api": {
        "backend": "process",
        "port": 18011,
        "url": "http://127.0.0.1:18011",
        "pidfile": "/srv/run/api.pid",
        "log_file": "/srv/log/api.log",
        "databases": ["/srv/data/api.db"],
        "env_file": "/srv/config/api.env",
        "probes": [
            {"type": "http", "path": "/health", "json": ["status == ok"]},
            {"type": "http", "path": "/health/ready", "name": "ready"},
        ],
    },
    "node": {
        "pidfile": "/srv/run/node.pid",
        "log_file": "/srv/log/node.log",
        "databases": ["/srv/data/chain.db"],
        "probes": [{"type": "process", "pidfile": "/srv/run/node.pid"}],
    },
    "rpc": {
        "backend": "process",
        "port": "18012",
        "reads": ["/srv/data/chain.db"],
        "log_file": "/srv/log/rpc.log",
    },
    "redis": {
        "backend": "process",
        "port": 16379,
        "pidfile": "/srv/run/redis.pid",
        "backup": [{"kind": "redis", "port": 16379, "rdb": "/srv/data/redis/dump.rdb"}],
        "probes": [{"type": "redis", "name": "ping", "port": 16379}],
    },
    "web": {
        "backend": "systemd",
        "unit": "nginx.service",
        "pidfile": "/run/nginx.pid",
        "env_file": "/etc/web.env",
    },
    "box": {"backend": "systemd"},
    "unordered": {"backend": "process", "probes": [{"type": "tcp", "port": 1}], "databases": ["/x.db"]},
}


def test_service_order_keeps_the_given_order_and_skips_unknown_names() -> None:
    assert cat.service_order(CATALOGUE, ["web", "ghost", "api"]) == ["web", "api"]
    assert cat.service_order(CATALOGUE, ORDER, having="env_file") == ["api", "web"]
    assert cat.service_order(CATALOGUE, []) == []


def own_probes(probes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [probe for probe in probes if probe["type"] != "service"]


def test_every_service_is_first_checked_by_its_backend() -> None:
    probes = cat.health_probes(CATALOGUE, ORDER)
    running = [probe for probe in probes if probe["type"] == "service"]
    assert [probe["name"] for probe in running] == [f"{name} running" for name in ORDER]
    assert running[0] == {
        "type": "service",
        "name": "redis running",
        "service": "redis",
        "backend": "process",
        "pidfile": "/srv/run/redis.pid",
        "port": 16379,
    }
    assert running[2] == {
        "type": "service",
        "name": "node running",
        "service": "node",
        "backend": "auto",
        "pidfile": "/srv/run/node.pid",
    }
    assert running[3]["port"] == 18012  # a templated port arrives as text
    assert running[4]["unit"] == "nginx.service"
    assert probes[0] == running[0] and probes[2]["name"] == "api running"


def test_running_probe_false_leaves_it_out() -> None:
    catalogue = {"ext": {"running_probe": False, "probes": [{"type": "tcp", "port": 1}]}}
    assert [probe["type"] for probe in cat.health_probes(catalogue, ["ext"])] == ["tcp"]


def test_health_probes_are_named_per_service_with_the_path_joined_to_the_url() -> None:
    assert own_probes(cat.health_probes(CATALOGUE, ORDER)) == [
        {"type": "redis", "name": "redis ping", "port": 16379, "service": "redis"},
        {
            "type": "http",
            "json": ["status == ok"],
            "name": "api /health",
            "service": "api",
            "url": "http://127.0.0.1:18011/health",
        },
        {"type": "http", "name": "api ready", "service": "api", "url": "http://127.0.0.1:18011/health/ready"},
        {"type": "process", "pidfile": "/srv/run/node.pid", "name": "node process", "service": "node"},
    ]


def test_health_probes_do_not_change_the_catalogue() -> None:
    probes = CATALOGUE["api"]["probes"]
    cat.health_probes(CATALOGUE, ["api"])
    assert probes[0] == {"type": "http", "path": "/health", "json": ["status == ok"]}


def test_health_probes_refuse_a_path_without_url_and_a_probe_without_type() -> None:
    with pytest.raises(AnsibleFilterError, match="needs the service's url"):
        cat.health_probes({"s": {"probes": [{"type": "http", "path": "/h"}]}}, ["s"])
    with pytest.raises(AnsibleFilterError, match="needs a type"):
        cat.health_probes({"s": {"probes": [{"port": 1}]}}, ["s"])


def test_backup_sources_list_databases_then_backup_entries_per_service() -> None:
    assert cat.backup_sources(CATALOGUE, ORDER) == [
        {"kind": "redis", "port": 16379, "rdb": "/srv/data/redis/dump.rdb", "service": "redis"},
        {"kind": "sqlite", "path": "/srv/data/api.db", "service": "api"},
        {"kind": "sqlite", "path": "/srv/data/chain.db", "service": "node"},
    ]
    both = {"s": {"backup": [{"kind": "files", "path": "/k"}], "databases": ["/a.db", "/b.db"]}}
    assert [(s["kind"], s["path"]) for s in cat.backup_sources(both, ["s"])] == [
        ("sqlite", "/a.db"),
        ("sqlite", "/b.db"),
        ("files", "/k"),
    ]


def test_log_sources_take_the_log_file_else_the_systemd_journal() -> None:
    assert cat.log_sources(CATALOGUE, ORDER) == [
        {"service": "api", "path": "/srv/log/api.log"},
        {"service": "node", "path": "/srv/log/node.log"},
        {"service": "rpc", "path": "/srv/log/rpc.log"},
        {"service": "web", "journal_unit": "nginx.service"},
        {"service": "box", "journal_unit": "box.service"},
    ]


def test_log_sources_pass_a_services_log_patterns() -> None:
    catalogue = {
        "web": {"log_file": "/var/log/nginx/error.log", "log_patterns": {"error": ["upstream timed out"]}},
        "db": {"backend": "systemd", "unit": "postgresql.service", "log_patterns": {"warning": "^slow"}},
        "cache": {"log_file": "/var/log/cache.log"},
    }
    assert cat.log_sources(catalogue, ["web", "db", "cache"]) == [
        {"service": "web", "path": "/var/log/nginx/error.log", "patterns": {"error": ["upstream timed out"]}},
        {"service": "db", "journal_unit": "postgresql.service", "patterns": {"warning": ["^slow"]}},
        {"service": "cache", "path": "/var/log/cache.log"},
    ]


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        (
            {"error": ["(unclosed"]},
            r"^service web: log_patterns.error: invalid regular expression '\(unclosed'",
        ),
        ({"errors": ["x"]}, r"^service web: log_patterns must be a dict with error and/or warning lists"),
        (["x"], r"^service web: log_patterns must be a dict"),
        ({"warning": [1]}, r"^service web: log_patterns.warning must be a list of regular expressions"),
    ],
)
def test_log_sources_reject_bad_log_patterns_naming_the_service(patterns: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        cat.log_sources({"web": {"log_file": "/l", "log_patterns": patterns}}, ["web"])


def test_diagnostics_targets_say_where_each_service_is() -> None:
    assert cat.diagnostics_targets(CATALOGUE, ORDER) == [
        {"name": "redis", "pidfile": "/srv/run/redis.pid", "port": 16379},
        {"name": "api", "pidfile": "/srv/run/api.pid", "port": 18011, "log_file": "/srv/log/api.log"},
        {"name": "node", "pidfile": "/srv/run/node.pid", "log_file": "/srv/log/node.log"},
        {"name": "rpc", "port": 18012, "log_file": "/srv/log/rpc.log"},
        {"name": "web", "unit": "nginx.service", "journal_unit": "nginx.service"},
        {"name": "box"},
    ]


def test_diagnostics_targets_without_journal_leave_the_journal_unit_out() -> None:
    assert cat.diagnostics_targets(CATALOGUE, ["web", "host", "web"], journal=False) == [
        {"name": "web", "unit": "nginx.service"},
        {"name": "web", "unit": "nginx.service"},
    ]


@pytest.mark.parametrize(("port", "expected"), [("18012", 18012), ("1.5", 1), ("x", 0), (None, 0), (7, 7)])
def test_diagnostics_targets_read_the_port_as_an_integer(port: Any, expected: int) -> None:
    assert cat.diagnostics_targets({"s": {"port": port}}, ["s"]) == [{"name": "s", "port": expected}]


def test_services_using_are_the_owners_and_the_readers_of_restored_data() -> None:
    restored = [{"service": "node", "target": "/srv/data/chain.db"}]
    assert cat.services_using(CATALOGUE, ORDER, restored) == ["node", "rpc"]
    assert cat.services_using(CATALOGUE, ORDER, [{"service": "api", "target": "/srv/data/api.db"}]) == ["api"]
    assert cat.services_using(CATALOGUE, ORDER, []) == []


def test_the_filters_are_registered_under_their_names() -> None:
    filters = cat.FilterModule().filters()
    assert sorted(filters) == sorted(
        [
            "service_order",
            "placed_services",
            "checked_catalogue",
            "health_probes",
            "backup_sources",
            "log_sources",
            "diagnostics_targets",
            "services_using",
            "owned_ports",
            "key_material",
        ]
    )
    assert all(callable(f) for f in filters.values())


PLACED = {
    "db": {"groups": ["database"]},
    "api": {"groups": ["app", "edge"]},
    "cache": {},
    "web": {"groups": ["edge"]},
}


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (["database"], ["db", "cache"]),
        (["edge"], ["api", "cache", "web"]),
        (["app", "database"], ["db", "api", "cache"]),
        ([], ["cache"]),
    ],
)
def test_placed_services_follow_group_membership(groups: list[str], expected: list[str]) -> None:
    assert cat.placed_services(PLACED, ["db", "api", "cache", "web"], groups) == expected


def test_placed_services_rank_by_order_then_catalogue_order() -> None:
    assert cat.placed_services(PLACED, ["web", "cache"], ["edge", "app", "database"]) == [
        "web",
        "cache",
        "db",
        "api",
    ]
    assert cat.placed_services(PLACED, None, ["edge"]) == ["api", "cache", "web"]


def test_a_host_list_overrides_the_groups() -> None:
    assert cat.placed_services(PLACED, ["db", "api", "cache", "web"], ["edge"], ["web", "db"]) == [
        "db",
        "web",
    ]
    assert cat.placed_services(PLACED, [], ["edge"], []) == []


@pytest.mark.parametrize(
    ("catalogue", "order", "host_services", "message"),
    [
        (
            PLACED,
            ["db", "ngnix"],
            None,
            "aitbc_service_order: unknown service ngnix (known: db, api, cache, web)",
        ),
        (PLACED, [], ["cache", "memcache"], "aitbc_host_services: unknown service memcache"),
        (PLACED, [], "cache", "aitbc_host_services must be a list of service names"),
        (
            {"web": {"groups": "edge"}},
            [],
            None,
            "service web: groups must be a list of inventory group names",
        ),
        ({"web": "nginx"}, [], None, "service web: its catalogue entry must be a dict"),
        (["web"], [], None, "aitbc_catalogue must be a dict of services"),
    ],
)
def test_placement_mistakes_name_the_variable(
    catalogue: Any, order: list[str], host_services: Any, message: str
) -> None:
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        cat.placed_services(catalogue, order, ["edge"], host_services)


def test_checked_catalogue_completes_process_services_under_the_root() -> None:
    checked = cat.checked_catalogue(
        {
            "web": {"command": "serve"},
            "db": {"backend": "systemd", "unit": "postgresql.service"},
            "own": {"backend": "process", "command": "x", "pidfile": "/run/own.pid"},
        },
        "/srv/h1",
    )
    assert checked["web"] == {
        "command": "serve",
        "pidfile": "/srv/h1/run/web.pid",
        "log_file": "/srv/h1/log/web.log",
    }
    assert checked["db"] == {"backend": "systemd", "unit": "postgresql.service"}
    assert checked["own"]["pidfile"] == "/run/own.pid" and checked["own"]["log_file"] == "/srv/h1/log/own.log"


@pytest.mark.parametrize(
    ("catalogue", "message"),
    [
        ({"web": {"command": "x", "probe": []}}, "service web: unknown key 'probe' (did you mean 'probes'?)"),
        ({"web": {"comand": "x"}}, "service web: unknown key 'comand' (did you mean 'command'?)"),
        ({"web": "nginx"}, "service web: its catalogue entry must be a dict"),
        ([], "aitbc_services must be a dict of services"),
    ],
)
def test_checked_catalogue_names_the_mistake(catalogue: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        cat.checked_catalogue(catalogue, "/srv")


def test_keys_of_ones_own_start_with_x() -> None:
    assert cat.checked_catalogue({"web": {"x_team": "shop"}}) == {"web": {"x_team": "shop"}}
