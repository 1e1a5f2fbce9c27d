"""How a report's host finds its inventory host: the inventory's names and addresses (ansible_host) as the
discovery reads them, the exact match of a name or an address, and what the intake's Assessor makes of a
report before triage (an address becomes the inventory name; a host the inventory lacks is put to a person).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opsrunner.ansible_secrets import INVENTORY_HOSTS, discover_secrets, hosts_known_as, inventory_hosts
from opsrunner.incidents import Incident
from opsrunner.intake.assess import Assessor
from opsrunner.memory import MemoryStore
from opsrunner.redact import Redactor
from opsrunner.reports import Report
from opsrunner.respond import InventoryPolicy
from opsrunner.settings import Settings

REPO = Path(__file__).resolve().parents[3]
HOSTS = {
    "node1": ["node1", "10.0.0.5"],
    "node2": ["node2", "node2.example"],
    "db1": ["db1", "10.0.0.9"],
    "db2": ["db2", "10.0.0.9"],  # two hosts behind one address
    "10.0.0.5-old": ["10.0.0.5-old"],
    "web": ["web"],
}


def test_inventory_hosts_lists_each_name_with_its_address_when_it_has_one() -> None:
    names = ["a", "b", "c", "d"]
    addresses = {"a": "10.0.0.1", "b": "", "c": "c"}
    assert inventory_hosts(names, addresses) == {"a": ["a", "10.0.0.1"], "b": ["b"], "c": ["c"], "d": ["d"]}


@pytest.mark.parametrize(
    ("name", "hosts"),
    [
        ("node1", ["node1"]),  # its inventory name
        ("10.0.0.5", ["node1"]),  # its ansible_host
        ("node2.example", ["node2"]),
        ("10.0.0.9", ["db1", "db2"]),  # an address of several hosts
        ("Node1", []),  # case-sensitive
        ("10.0.0.5:9100", []),  # exact: the intake strips the port before
        ("node", []),  # no prefix matching
        ("ghost", []),
    ],
)
def test_a_host_is_known_by_its_name_or_its_address_exactly(name: str, hosts: list[str]) -> None:
    assert hosts_known_as(HOSTS, name) == hosts


def test_an_inventory_name_wins_over_another_host_s_address() -> None:
    hosts = {"a": ["a", "b"], "b": ["b"]}
    assert hosts_known_as(hosts, "b") == ["b"]


def policy(context: dict[str, object] | None = None, error: str = "") -> InventoryPolicy:
    return InventoryPolicy({INVENTORY_HOSTS: HOSTS} if context is None else context, Redactor(), error)


def test_the_policy_names_the_one_inventory_host_of_a_name_or_address() -> None:
    known = policy()
    assert known.inventory_host("10.0.0.5") == "node1"
    assert known.inventory_host("node1") == "node1"
    assert known.inventory_host("10.0.0.9") is None  # ambiguous
    assert known.hosts_known_as("10.0.0.9") == ["db1", "db2"]
    assert known.inventory_host("ghost") is None


def test_an_unread_inventory_knows_no_hosts() -> None:
    assert policy(error="cannot read the inventory's paging settings: boom").hosts is None
    assert policy({}).hosts is None
    assert policy({}).inventory_host("node1") is None


def assessor(tmp_path: Path, known: InventoryPolicy) -> Assessor:
    settings = Settings(project_root=REPO, memory_dir=tmp_path / "memory", work_dir=tmp_path / "work")
    return Assessor(settings, MemoryStore(settings.memory_dir), tmp_path / "hosts.yml", policy=known)


def report(host: str, **labels: str) -> Report:
    return Report("alertmanager", host, "web", "InstanceDown", "down", labels=labels)


def test_the_assessor_puts_an_address_on_its_inventory_host_and_keeps_the_reported_one(
    tmp_path: Path,
) -> None:
    on = assessor(tmp_path, policy())._on_inventory
    mapped = on(report("10.0.0.5", instance="10.0.0.5:9100"))
    assert (mapped.host, mapped.labels) == (
        "node1",
        {"instance": "10.0.0.5:9100", "reported_host": "10.0.0.5"},
    )
    for unchanged in (report("node1"), report("ghost"), report("10.0.0.9")):
        assert on(unchanged) is unchanged


def incident(host: str, source: str = "alertmanager") -> Incident:
    return Incident("INC-1", host, "web", "InstanceDown", "down", source=source)


def test_a_host_outside_the_inventory_is_named_and_an_unread_inventory_tries_the_run(tmp_path: Path) -> None:
    outside = assessor(tmp_path, policy())._outside
    assert outside(incident("node1")) is None
    assert outside(incident("ghost")) == "ghost is not a host of the inventory"
    assert outside(incident("10.0.0.9")) == "10.0.0.9 is the address of several inventory hosts (db1, db2)"
    assert outside(incident("controller", source="intake")) is None  # the dead-man's switch
    unread = assessor(tmp_path, policy({}, error="cannot read the inventory"))._outside
    assert unread(incident("ghost")) is None


def test_discovery_reads_names_and_addresses_from_the_inventory_and_host_vars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    inventory = tmp_path / "inventory" / "hosts.yml"
    (tmp_path / "inventory" / "host_vars").mkdir(parents=True)
    inventory.write_text(
        "all:\n"
        "  vars:\n"
        "    subnet: 10.0.1\n"
        "  hosts:\n"
        "    plain: {ansible_connection: local}\n"
        "    addressed: {ansible_host: 10.0.0.5}\n"
        "    templated: {ansible_host: '{{ subnet }}.7'}\n"
        "    unplayed: {ansible_host: 10.0.0.8}\n"
        "    filed: {}\n"
    )
    (tmp_path / "inventory" / "host_vars" / "filed.yml").write_text("ansible_host: filed.example\n")
    playbook = tmp_path / "site.yml"
    playbook.write_text("- hosts: all:!unplayed\n  gather_facts: false\n  tasks: []\n")
    _values, context = discover_secrets(playbook, inventory, timeout=60)
    assert context[INVENTORY_HOSTS] == {
        "plain": ["plain"],
        "addressed": ["addressed", "10.0.0.5"],
        "templated": ["templated", "10.0.1.7"],
        "unplayed": ["unplayed", "10.0.0.8"],  # no play reached it: the inventory file's value
        "filed": ["filed", "filed.example"],
    }


def test_a_host_added_to_the_inventory_after_the_start_is_found_on_the_next_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake reads the inventory at its start; a report naming a host it lacks reads it again (at most
    once per assess interval: 0 here)."""
    monkeypatch.setenv("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    node1: {ansible_host: 10.0.0.5}\n")
    settings = Settings(project_root=REPO, memory_dir=tmp_path / "memory", work_dir=tmp_path / "work")
    fresh = Assessor(settings, MemoryStore(settings.memory_dir), inventory, assess_interval_s=0)
    assert fresh.policy.hosts == {"node1": ["node1", "10.0.0.5"]}
    assert fresh._on_inventory(report("10.0.0.7")).host == "10.0.0.7"
    inventory.write_text(
        "all:\n  hosts:\n    node1: {ansible_host: 10.0.0.5}\n    node2: {ansible_host: 10.0.0.7}\n"
    )
    assert fresh._on_inventory(report("10.0.0.7")).host == "node2"
