"""The ports a host's services own and the key material they hold (plugins/filter/catalogue.py): what the
heartbeat's listeners and file_mode security probes are built from."""

from __future__ import annotations

from typing import Any

from ansible_collections.aitbc.ops.plugins.filter import catalogue as cat

CATALOGUE: dict[str, dict[str, Any]] = {
    "api": {
        "port": "18011",  # templated values arrive as text
        "url": "http://127.0.0.1:18011",
        "probes": [{"type": "http", "path": "/health"}, {"type": "tcp", "port": 18111}],
    },
    "wallet": {
        "url": "https://wallet.internal",  # no port: its scheme's
        "backup": [
            {"kind": "files", "path": "/srv/data/wallet/keystore"},
            {"kind": "files", "path": "/srv/keys/signer.pem"},
        ],
        "probes": [{"type": "http", "url": "http://127.0.0.1:8443/health"}],
    },
    "cache": {
        "backup": [{"kind": "redis", "port": 16379, "rdb": "/srv/data/dump.rdb"}],
        "probes": [{"type": "redis", "name": "ping"}],  # redis's own port
    },
    "odd": {"port": "not-a-port", "url": "http://h:99999/", "probes": ["not a dict", {"type": "process"}]},
    "elsewhere": {"port": 5432, "backup": [{"kind": "files", "path": "/srv/elsewhere/keys"}]},
}


def test_owned_ports_cover_ports_urls_probes_and_backups_of_the_placed_services_only() -> None:
    assert cat.owned_ports(CATALOGUE, ["api", "wallet", "cache"]) == [443, 6379, 8443, 16379, 18011, 18111]
    assert cat.owned_ports(CATALOGUE, ["cache"]) == [6379, 16379]
    assert 5432 not in cat.owned_ports(CATALOGUE, ["api", "wallet", "cache"])  # not placed here


def test_owned_ports_skip_what_does_not_parse_and_unknown_services() -> None:
    assert cat.owned_ports(CATALOGUE, ["odd", "no-such-service"]) == []
    assert cat.owned_ports({}, []) == []


def test_owned_ports_of_the_shipped_aitbc_catalogue_shape() -> None:
    redis = {
        "port": "16379",
        "backup": [{"kind": "redis", "port": "16379", "rdb": "/d/dump.rdb"}],
        "probes": [{"type": "redis", "name": "ping", "port": "16379"}],
    }
    rpc = {"port": "18012", "url": "http://127.0.0.1:18012", "probes": [{"type": "http", "path": "/health"}]}
    node = {"probes": [{"type": "process", "pidfile": "/r/node.pid"}]}
    catalogue = {"redis": redis, "blockchain-rpc": rpc, "blockchain-node": node}
    assert cat.owned_ports(catalogue, list(catalogue)) == [16379, 18012]


def test_key_material_is_the_placed_services_files_backups_in_order_each_once() -> None:
    assert cat.key_material(CATALOGUE, ["cache", "wallet", "api"]) == [
        "/srv/data/wallet/keystore",
        "/srv/keys/signer.pem",
    ]
    twice = {
        "a": {"backup": [{"kind": "files", "path": "/k"}]},
        "b": {"backup": [{"kind": "files", "path": "/k"}]},
    }
    assert cat.key_material(twice, ["a", "b"]) == ["/k"]
    assert cat.key_material(CATALOGUE, ["api", "cache"]) == []
