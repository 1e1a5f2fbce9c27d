"""The failure archive: entries per stable signature, repeats linked, hand edits kept, no link lost when
several processes resolve at once, and every resolver reaching it through IncidentStore.save()."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

from opsrunner.failures import (
    ARCHIVE,
    Archive,
    FailureEntry,
    Occurrence,
    entry_id,
    normalise,
    read_archive,
    record_resolution,
    signature,
)
from opsrunner.incidents import Incident, IncidentStore, close
from opsrunner.memory import FAILURE_ARCHIVE_HEADER, MemoryStore

OPENED = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)

RESOLVER = """
import datetime as dt, sys
from opsrunner.incidents import Incident, IncidentStore
from opsrunner.memory import MemoryStore
store = MemoryStore(sys.argv[1])
incidents = IncidentStore(store)
worker = int(sys.argv[2])
for n in range(int(sys.argv[3])):
    incident = Incident(id=f"INC-20261123-{worker * 100 + n + 1:03d}", host=f"h{worker}",
                        service="redis", check="redis ping", summary=f"h{worker} redis ping failing",
                        opened=dt.datetime(2026, 11, 23, 10, n, tzinfo=dt.UTC))
    incidents.save(incident)
    incidents.resolve(incident.id, cause=f"OOM killed pid {worker}{n}", resolution="restarted redis")
"""


def store_at(tmp_path: Path) -> MemoryStore:
    store = MemoryStore(tmp_path / "ai-memory")
    store.ensure_layout()
    return store


def open_incident(incidents: IncidentStore, host: str = "t1", **overrides: object) -> Incident:
    fields: dict = dict(
        id=incidents.new_id(OPENED),
        host=host,
        service="coordinator-api",
        check="coordinator-api /health",
        summary=f"{host} coordinator-api /health failing",
        opened=OPENED,
        updated=OPENED,
    )
    fields.update(overrides)
    incident = Incident(**fields)
    incidents.save(incident)
    return incident


def test_signature_ignores_host_case_numbers_and_the_service_prefix() -> None:
    one = signature("coordinator-api", "coordinator-api /health", "Service down (pid 1234).")
    two = signature("coordinator-api", "coordinator-api /health", "service DOWN (pid 77)")
    assert one == two == "coordinator-api|/health|service down (pid <n>)"
    assert signature("redis", "redis ping", "") == "redis|ping|unknown cause"
    assert normalise("release 3 failed, INC-20261123-004 deadbeefcafe") == "release <n> failed, <id> <id>"
    assert entry_id(one) == entry_id(two) != entry_id(signature("redis", "redis ping", "service down"))


def test_first_resolution_adds_an_entry_and_the_record_links_it(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    incidents = IncidentStore(store)
    incident = open_incident(incidents, "t2")
    resolved = incidents.resolve(incident.id, cause="service down", resolution="restarted by hand")

    [entry] = read_archive(store).entries()
    assert entry.id == resolved.archive == entry_id("coordinator-api|/health|service down")
    assert (entry.failure, entry.cause, entry.resolution) == (
        "coordinator-api /health failing",
        "service down",
        "restarted by hand",
    )
    assert entry.detected == OPENED
    assert entry.occurrences == [Occurrence(incident.id, OPENED, "t2")]
    text = store.path(ARCHIVE).read_text()
    assert text.startswith(FAILURE_ARCHIVE_HEADER)
    assert f"## {entry.id}: coordinator-api /health failing — service down\n" in text
    assert "- **Failure:** coordinator-api /health failing\n- **Cause:** service down\n" in text
    assert "- **Resolution:** restarted by hand\n- **Detected:** 2026-11-23T10:00:00Z\n" in text
    assert f"  - [{incident.id}](../incidents/{incident.id}.md) 2026-11-23T10:00:00Z t2\n" in text

    record = store.path("incidents", f"{incident.id}.md").read_text()
    assert f"- **Archive:** {entry.id} in [failure-archive.md](../failures/failure-archive.md)" in record
    again = incidents.get(incident.id)
    assert again.archive == entry.id
    assert again.timeline[-1].text == f"filed in the failure archive as {entry.id}"


def test_a_known_failure_repeats_one_entry_linked_twice(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    incidents = IncidentStore(store)
    first = open_incident(incidents, "t1")
    incidents.resolve(first.id, cause="service down (pid 812)", resolution="restarted by the heartbeat")
    second = open_incident(incidents, "t3", opened=OPENED + dt.timedelta(hours=5))
    incidents.resolve(second.id, cause="Service down (pid 90)", resolution="restarted by hand")

    [entry] = read_archive(store).entries()
    assert [o.incident for o in entry.occurrences] == [first.id, second.id]
    assert entry.resolution == "restarted by the heartbeat"  # the entry keeps what it knew
    assert entry.occurrences[1].note == "restarted by hand"  # the repeat tells how it was fixed
    assert entry.detected == OPENED
    assert incidents.get(first.id).archive == incidents.get(second.id).archive == entry.id
    text = store.path(ARCHIVE).read_text()
    assert text.count("## F-") == 1 and "- **Occurrences:** 2\n" in text


def test_another_cause_is_another_entry(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    incidents = IncidentStore(store)
    incidents.resolve(open_incident(incidents).id, cause="service down", resolution="restarted")
    incidents.resolve(open_incident(incidents).id, cause="database locked", resolution="vacuumed")
    assert [e.cause for e in read_archive(store).entries()] == ["service down", "database locked"]


def test_every_resolver_is_covered_by_save_and_a_resolved_record_is_filed_once(tmp_path: Path) -> None:
    """The heartbeat, backups and deploys close() an incident and save() it: that files it, once."""
    store = store_at(tmp_path)
    incidents = IncidentStore(store)
    incident = open_incident(incidents, service="backup", check="backup verify", summary="t1 backup failing")
    close(incident, "resolved: set verified", cause="damaged backup set", resolution="a later set passed")
    incidents.save(incident)
    incidents.save(incident)  # the heartbeat saves every incident it touched; nothing is linked twice
    reread = incidents.get(incident.id)
    incidents.save(reread)
    [entry] = read_archive(store).entries()
    assert entry.failure == "backup verify failing"
    assert len(entry.occurrences) == 1 and reread.archive == entry.id
    assert record_resolution(store, reread.to_resolution()) == entry.id  # idempotent by incident id
    assert len(read_archive(store).entries()[0].occurrences) == 1


def test_hand_edits_and_foreign_sections_survive_a_rewrite(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    incidents = IncidentStore(store)
    incidents.resolve(open_incident(incidents, "t1").id, cause="service down", resolution="restarted")
    path = store.path(ARCHIVE)
    text = path.read_text()
    text = text.replace("- **Resolution:** restarted\n", "- **Resolution:** restart it; check the DB\n")
    prevention = "- **Prevention:** alert on /health/ready too\n"
    text = text.replace("- **Occurrences:**", prevention + "- **Occurrences:**")
    text += "\n## Known thing\n\nWritten by hand.\n- **Signature id:** aaaabbbbcccc\n"
    path.write_text(text)

    incidents.resolve(open_incident(incidents, "t2").id, cause="service down", resolution="restarted")
    after = path.read_text()
    assert "- **Resolution:** restart it; check the DB\n" in after
    assert "- **Prevention:** alert on /health/ready too\n" in after
    assert after.endswith("## Known thing\n\nWritten by hand.\n- **Signature id:** aaaabbbbcccc\n")
    assert after.count("](../incidents/") == 2 and after.count("## F-") == 1


def test_parse_and_render_round_trip() -> None:
    entry = FailureEntry(
        id="F-0123abcd",
        title="redis ping failing — oom",
        failure="redis ping failing",
        cause="oom",
        resolution="raised maxmemory",
        detected=OPENED,
        signature="redis|ping|oom",
        occurrences=[
            Occurrence("INC-20261123-001", OPENED, "t1"),
            Occurrence("INC-20261124-002", OPENED + dt.timedelta(days=1), "t2", "restarted redis"),
        ],
        extra=["- **Owner:** storage team"],
    )
    assert FailureEntry.from_markdown(entry.to_markdown()) == entry
    text = FAILURE_ARCHIVE_HEADER + "\n" + entry.to_markdown() + "\n## Notes\n\nfree text\n"
    archive = Archive.parse(text)
    assert archive.render() == text
    assert archive.entries() == [entry] and archive.blocks[1] == "## Notes\n\nfree text\n"
    assert Archive.parse(FAILURE_ARCHIVE_HEADER).render() == FAILURE_ARCHIVE_HEADER


def test_a_broken_archive_never_stops_a_resolve(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.path(ARCHIVE).unlink()
    store.path(ARCHIVE).mkdir()  # unreadable as a file
    incidents = IncidentStore(store)
    incident = open_incident(incidents)
    resolved = incidents.resolve(incident.id, cause="service down", resolution="restarted")
    reread = incidents.get(incident.id)
    assert reread.status == "resolved" and reread.archive == "" == resolved.archive
    assert reread.timeline[-1].text.startswith("failure archive not updated: IsADirectoryError")


def test_concurrent_resolvers_lose_no_link(tmp_path: Path) -> None:
    """6 processes resolve 8 incidents each of one failure at once: one entry, 48 links."""
    store = store_at(tmp_path)
    workers = [
        subprocess.Popen([sys.executable, "-c", RESOLVER, str(store.root), str(w), "8"]) for w in range(6)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0] * 6
    [entry] = read_archive(store).entries()
    assert entry.signature == "redis|ping|oom killed pid <n>"
    assert len(entry.occurrences) == 48
    assert len({o.incident for o in entry.occurrences}) == 48
    assert all(i.archive == entry.id for i in IncidentStore(store).all())
