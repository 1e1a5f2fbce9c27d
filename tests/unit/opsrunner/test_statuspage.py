"""The status page from synthetic data: heartbeat history, grid and timeline, incidents, backups, releases,
escaping, and a page that names no other host."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from opsrunner import heartbeat as hb
from opsrunner import statuspage as sp
from opsrunner.incidents import Incident, IncidentStore
from opsrunner.memory import MemoryStore, format_time
from opsrunner.recorder import HostStats, Recorder, RunRecord, TaskFailure, TaskResult
from opsrunner.redact import Redactor
from opsrunner.settings import BadInput

NOW = dt.datetime(2026, 11, 24, 12, 0, 0, tzinfo=dt.UTC)
EVIL = '<script>alert("x")</script>&"\'><img src=x>'


def ev(name: str, **data) -> dict:
    return {"event": name, "event_data": data}


def at(minutes_ago: int) -> str:
    return format_time(NOW - dt.timedelta(minutes=minutes_ago))


def up(detail: str = "") -> dict:
    return {"ok": True, "detail": detail}


def down(detail: str) -> dict:
    return {"ok": False, "detail": detail}


def entry(minutes_ago: int, hosts: dict) -> dict:
    return {"time": at(minutes_ago), "run_id": f"run-{minutes_ago}", "hosts": hosts}


def healthy(*services: str) -> dict:
    return {"unreachable": "", "services": {s: up() for s in services}}


def record(*results: TaskResult, hosts: tuple[str, ...] = ("t1", "t2"), failures=()) -> RunRecord:
    run = RunRecord(run_id="R1", playbook="report.yml", source="test", event="report", started=NOW)
    run.hosts = {h: HostStats() for h in hosts}
    run.results = list(results)
    run.failures = list(failures)
    return run


# -- heartbeat history ----------------------------------------------------------------------------------


def test_heartbeat_appends_one_redacted_history_line_per_run(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    recorder = Recorder(store, Redactor(["hunter2-token"]), source="test", event="heartbeat")
    watch = hb.HeartbeatHooks(recorder, send_alert=lambda *_: None)
    probes = [
        {"name": "coordinator-api /health", "service": "coordinator-api", "ok": True, "detail": "200"},
        {
            "name": "coordinator-api /ready",
            "service": "coordinator-api",
            "ok": False,
            "detail": "hunter2-token",
        },
        {"name": "redis ping", "service": "redis", "ok": True, "detail": "PONG"},
        {"name": "host disk", "service": "host", "ok": True, "detail": "40% free"},
    ]
    recorder.handle(
        ev(
            "runner_on_ok",
            host="t1",
            task="heartbeat: check",
            task_action="aitbc.ops.health",
            res={"labels": {"heartbeat": "check"}, "results": probes},
        )
    )
    recorder.handle(ev("runner_on_unreachable", host="t2", task="check", res={"msg": "ssh: no route"}))
    recorder.handle(ev("playbook_on_stats", processed={"t1": 1, "t2": 1}, ok={"t1": 1}, dark={"t2": 1}))
    record = recorder.finish(rc=1)
    assert watch.hosts["t2"].unreachable
    [line] = store.path(hb.HISTORY_FILE).read_text().splitlines()
    saved = json.loads(line)
    assert saved["run_id"] == record.run_id and saved["time"] == format_time(record.finished)
    assert saved["hosts"]["t1"] == {
        "unreachable": "",
        "services": {
            "coordinator-api": {"ok": False, "detail": "coordinator-api /ready: ********"},
            "host": {"ok": True, "detail": ""},
            "redis": {"ok": True, "detail": ""},
        },
    }
    assert saved["hosts"]["t2"] == {"unreachable": "ssh: no route", "services": {}}


def test_history_entry_marks_a_service_restarted_back_to_health() -> None:
    report = hb.HostReport(
        probes={"redis ping": {"service": "redis", "ok": False, "detail": "refused"}},
        rechecks={"redis ping": {"service": "redis", "ok": True, "detail": "PONG"}},
        restarts=[{"service": "redis", "ok": True, "detail": ""}],
    )
    saved = hb.history_entry("r", NOW, {"t1": report}, str)
    assert saved["hosts"]["t1"]["services"] == {"redis": {"ok": True, "detail": "restarted by the heartbeat"}}


def test_history_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hb, "HISTORY_MAX_LINES", 10)
    monkeypatch.setattr(hb, "HISTORY_KEEP_LINES", 6)
    store = MemoryStore(tmp_path)
    for number in range(11):
        hb.append_history(store, {"time": at(0), "run_id": str(number), "hosts": {}})
    kept = [json.loads(line)["run_id"] for line in store.path(hb.HISTORY_FILE).read_text().splitlines()]
    assert kept == [str(n) for n in range(5, 11)]
    hb.append_history(store, {"time": at(0), "run_id": "11", "hosts": {}})
    assert len(store.path(hb.HISTORY_FILE).read_text().splitlines()) == 7


def test_read_history_keeps_the_last_entries_and_skips_torn_lines(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    for number in range(5):
        hb.append_history(store, entry(number, {"t1": healthy("redis")}))
    store.append(hb.HISTORY_FILE, '{"time": "2026-11-24T12:00:00Z", "hos')
    assert [e["run_id"] for e in sp.read_history(store, 3)] == ["run-2", "run-3", "run-4"]
    assert sp.read_history(MemoryStore(tmp_path / "empty"), 48) == []


# -- grid and timeline ----------------------------------------------------------------------------------


HISTORY = [
    entry(90, {"t1": healthy("redis", "host"), "t2": healthy("redis", "coordinator-api", "host")}),
    entry(60, {"t1": {"unreachable": "ssh: timed out", "services": {}}, "t2": healthy("redis", "host")}),
    entry(
        30,
        {
            "t1": healthy("redis", "host"),
            "t2": {
                "unreachable": "",
                "services": {"coordinator-api": down("coordinator-api /health: refused"), "redis": up()},
            },
        },
    ),
    entry(10, {"t2": {"unreachable": "", "services": {"coordinator-api": down("refused"), "redis": up()}}}),
]


def test_grid_shows_each_hosts_latest_heartbeat() -> None:
    grid = sp.build_grid(HISTORY)
    assert grid.services == ["coordinator-api", "redis", "host"]
    states = {(c.host, c.service): (c.state, c.detail) for c in grid.cells()}
    assert states == {
        ("t1", "coordinator-api"): ("absent", ""),
        ("t1", "redis"): ("up", ""),
        ("t1", "host"): ("up", ""),
        ("t2", "coordinator-api"): ("down", "refused"),
        ("t2", "redis"): ("up", ""),
        ("t2", "host"): ("absent", ""),
    }
    assert [(r.host, r.time) for r in grid.rows] == [("t1", at(30)), ("t2", at(10))]


def test_grid_of_an_unreachable_host() -> None:
    grid = sp.build_grid(HISTORY[:2])
    t1 = {c.service: c for c in grid.cells() if c.host == "t1"}
    assert {c.state for c in t1.values()} == {"unreachable"}
    assert t1["redis"].detail == "host unreachable: ssh: timed out"
    alone = sp.build_grid([entry(1, {"t1": {"unreachable": "ssh: timed out", "services": {}}})])
    assert [(c.service, c.state) for c in alone.cells()] == [("host", "unreachable")]


def test_timeline_blocks_and_uptime() -> None:
    rows = {(r.host, r.service): r for r in sp.build_timeline(HISTORY)}
    assert list(rows) == [
        ("t1", "redis"),
        ("t1", "host"),
        ("t2", "coordinator-api"),
        ("t2", "redis"),
        ("t2", "host"),
    ]
    assert [b.state for b in rows[("t1", "redis")].blocks] == ["up", "unreachable", "up", "absent"]
    assert rows[("t1", "redis")].uptime == 100.0
    assert [b.state for b in rows[("t2", "coordinator-api")].blocks] == ["up", "absent", "down", "down"]
    assert rows[("t2", "coordinator-api")].uptime == pytest.approx(100 / 3)
    assert sp.uptime_text(rows[("t2", "coordinator-api")].uptime) == "33.3%"
    assert sp.uptime_text(None) == "–"


# -- incidents, backups, releases ----------------------------------------------------------------------


def incident(number: int, status: str, opened_h: float, resolved_h: float | None = None, **kw) -> Incident:
    opened = NOW - dt.timedelta(hours=opened_h)
    resolved = NOW - dt.timedelta(hours=resolved_h) if resolved_h is not None else None
    return Incident(
        id=f"INC-20261124-{number:03d}",
        host=kw.get("host", "t2"),
        service=kw.get("service", "coordinator-api"),
        check="coordinator-api /health",
        summary=kw.get("summary", "t2 coordinator-api /health failing"),
        status=status,
        opened=opened,
        updated=resolved or opened,
        resolved=resolved,
    )


def test_incidents_active_first_then_resolved_this_week() -> None:
    found = [
        incident(1, "resolved", 300, 200),  # resolved 8+ days ago: left out
        incident(2, "resolved", 30, 20),
        incident(3, "open", 5),
        incident(4, "acknowledged", 1),
        incident(5, "resolved", 3, 2),
    ]
    assert [i.id[-3:] for i in sp.select_incidents(found, NOW)] == ["004", "003", "005", "002"]


def backup_result(host: str, newest: dict | None, verified: dict | None, failed: bool = False) -> TaskResult:
    res = {"msg": "permission denied"} if failed else {"newest": newest, "newest_verified": verified}
    return TaskResult(host, "List backup sets", "aitbc.ops.backup_info", failed, res)


def test_backup_rows() -> None:
    fresh = {"set": "20261124T110000Z", "age_s": 3600, "verified": True, "complete": True}
    failed = {"set": "20261124T113000Z", "age_s": 1800, "verified": False, "complete": True}
    old = {"set": "20261120T000000Z", "age_s": 400000, "verified": True, "complete": True}
    run = record(
        backup_result("t1", fresh, fresh),
        backup_result("t2", failed, old),
        backup_result("t3", None, None),
        backup_result("t4", None, None, failed=True),
        hosts=("t1", "t2", "t3", "t4", "t5"),
        failures=[TaskFailure("t5", "List backup sets", "aitbc.ops.backup_info", "ssh: refused", True)],
    )
    rows = {r.host: r for r in sp.backup_rows(run, {"t1": 2.0}, sp.unreachable_hosts(run))}
    t1, t2, t3, t4, t5 = (rows[h] for h in ("t1", "t2", "t3", "t4", "t5"))
    assert (t1.status, t1.verified, t1.threshold_h) == ("ok", "yes", 2.0)
    assert (t2.status, t2.verified, t2.newest_verified, t2.threshold_h) == (
        "stale",
        "FAILED",
        old["set"],
        26.0,
    )
    assert (t3.status, t3.detail) == ("stale", "no backup set")
    assert (t4.status, t4.detail) == ("error", "permission denied")
    assert (t5.status, t5.detail) == ("unreachable", "ssh: refused")


def test_hosts_without_backup_sources_get_no_backup_row() -> None:
    fresh = {"set": "20261124T110000Z", "age_s": 3600, "verified": True, "complete": True}
    gone = TaskFailure("t3", "List backup sets", "aitbc.ops.backup_info", "ssh: refused", True)
    # t2 keeps no data: the report run skips its backup_info, so it has no result; t3 is unreachable.
    run = record(backup_result("t1", fresh, fresh), hosts=("t1", "t2", "t3"), failures=[gone])
    unreachable = sp.unreachable_hosts(run)
    assert [r.host for r in sp.backup_rows(run, {}, unreachable, {"t1"})] == ["t1"]
    assert [r.host for r in sp.backup_rows(run, {}, unreachable, {"t1", "t3"})] == ["t1", "t3"]
    assert [r.host for r in sp.backup_rows(run, {}, unreachable)] == ["t1", "t3"]  # not known: every host


def test_site_facts_and_their_defaults() -> None:
    assert sp.site_from({"site": "Webshop", "backup_hosts": ["t1"]}) == ("Webshop", {"t1"})
    assert sp.site_from({"site": " ", "backup_hosts": []}) == ("Fleet", set())
    assert sp.site_from({"site": 3, "backup_hosts": "t1"}) == ("Fleet", None)
    assert sp.site_from("not a mapping") == ("Fleet", None)


def test_page_title_comes_from_the_site_name(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    page = sp.build_page(store, record(), sp.Facts(site="Webshop <&>"), 48, NOW)
    text = sp.render_page(page)
    assert "<title>Webshop &lt;&amp;&gt; status · " in text
    assert "<h1>Webshop &lt;&amp;&gt; status</h1>" in text
    assert "AITBC" not in text
    assert sp.summary(page, tmp_path / "index.html", 0)["site"] == "Webshop <&>"
    default = sp.render_page(sp.build_page(store, record(), sp.Facts(), 48, NOW))
    assert "<h1>Fleet status</h1>" in default


def test_thresholds_follow_the_heartbeat_and_fall_back_to_26_hours() -> None:
    assert sp.thresholds_from({"t1": 2, "t2": "0", "t3": "x", "t4": 12.5}) == {
        "t1": 2.0,
        "t2": 26.0,
        "t4": 12.5,
    }
    assert sp.thresholds_from("not a mapping") == {}


def test_release_rows() -> None:
    items = [
        {
            "item": "coordinator-api",
            "current": "1.4.2",
            "previous": "1.4.1",
            "history": [{"at": at(60), "by": "alice"}],
        },
        {"item": "explorer", "failed": True, "msg": "app_root is not a folder"},
        {"item": "skipped-one", "skipped": True},
    ]
    run = record(
        TaskResult("t1", "Read the releases", "aitbc.ops.release_info", True, {"results": items}),
        failures=[TaskFailure("t2", "Read", "aitbc.ops.release_info", "ssh: refused", True)],
    )
    rows = sp.release_rows(run, sp.unreachable_hosts(run))
    assert [(r.host, r.service, r.state, r.current, r.previous, r.deployed_by, r.error) for r in rows] == [
        ("t1", "coordinator-api", "ok", "1.4.2", "1.4.1", "alice", ""),
        ("t1", "explorer", "error", "", "", "", "app_root is not a folder"),
        ("t2", "-", "unreachable", "", "", "", "ssh: refused"),
    ]


def test_exit_codes() -> None:
    gone = [TaskFailure(h, "t", "a", "ssh", True) for h in ("t1", "t2")]
    assert sp.exit_code(record(failures=gone), sp.unreachable_hosts(record(failures=gone))) == 3
    some = record(failures=gone[:1])
    assert sp.exit_code(some, sp.unreachable_hosts(some)) == 0
    assert sp.exit_code(record(hosts=()), {}) == 0


# -- rendering ----------------------------------------------------------------------------------------


def page_of(store: MemoryStore, run: RunRecord | None = None, heartbeats: int = 48) -> sp.Page:
    return sp.build_page(store, run or record(), sp.Facts(site="AITBC"), heartbeats, NOW)


def test_page_escapes_everything(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "mem")
    hosts = {EVIL: {"unreachable": "", "services": {EVIL: down(EVIL), "redis": up()}}}
    hb.append_history(store, entry(5, hosts))
    IncidentStore(store).save(incident(7, "open", 1, host=EVIL, service=EVIL, summary=EVIL))
    items = [{"item": EVIL, "current": EVIL, "previous": None, "history": [{"at": EVIL, "by": EVIL}]}]
    run = record(TaskResult("t1", "r", "aitbc.ops.release_info", False, {"results": items}))
    page = page_of(store, run)
    text = sp.render_page(page)
    assert "<script>" not in text and "<img" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&quot;&#x27;&gt;&lt;img src=x&gt;" in text
    incident_page = sp.render_incident(page.incidents[0], NOW)
    assert "<script>" not in incident_page and "<img" not in incident_page


def test_grid_cells_carry_their_state(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    for item in HISTORY:
        hb.append_history(store, item)
    text = sp.render_page(page_of(store))
    cells = dict(re.findall(r'data-host="t2" data-service="([^"]+)" data-state="(\w+)"', text))
    assert cells == {"coordinator-api": "down", "redis": "up", "host": "absent"}
    down_cell = re.search(r'<td class="cell down"[^>]*>(.*?)</td>', text)
    assert down_cell and "DOWN" in down_cell.group(1) and "refused" in down_cell.group(1)
    assert 'title="refused"' in text
    assert "1 problem: t2 coordinator-api down" in text
    assert "2026-11-24 12:00:00 UTC" in text  # the generation time, in UTC


def test_timeline_length_follows_heartbeats(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    for item in HISTORY:
        hb.append_history(store, item)
    page = page_of(store, heartbeats=2)
    assert page.history_times == [at(30), at(10)]
    text = sp.render_page(page)
    row = re.search(r'<tr[^>]*data-host="t2" data-service="coordinator-api">.*?</tr>', text)
    assert row and row.group(0).count('class="b ') == 2 and "0.0%" in row.group(0)


def test_empty_store_still_renders(tmp_path: Path) -> None:
    text = sp.render_page(page_of(MemoryStore(tmp_path)))
    assert "No heartbeat recorded yet" in text and "No open incident" in text


def test_site_has_no_external_urls_and_its_links_resolve(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "mem")
    hb.append_history(
        store,
        entry(
            5,
            {
                "t1": {
                    "unreachable": "",
                    "services": {
                        "coordinator-api": down("GET https://coordinator.example.org/health: refused")
                    },
                }
            },
        ),
    )
    incidents = IncidentStore(store)
    incidents.save(incident(1, "open", 1, summary="see http://wiki.example.org/runbook"))
    incidents.save(incident(2, "resolved", 30, 10))
    incidents.save(incident(3, "resolved", 300, 250))  # too old to be listed
    out = tmp_path / "out"
    index = sp.write_site(out, page_of(store), store)
    pages = [index, *sorted((out / "incidents").glob("*.html"))]
    assert [p.name for p in pages] == ["index.html", "INC-20261124-001.html", "INC-20261124-002.html"]
    for page in pages:
        text = page.read_text()
        refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text, flags=re.IGNORECASE)
        assert refs, page
        for ref in refs:
            assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//", ref, flags=re.IGNORECASE), (page.name, ref)
            assert (page.parent / ref).is_file(), (page.name, ref)
        assert "@import" not in text and "url(" not in text
    assert (out / "incidents" / "INC-20261124-001.md").read_text() == incidents.get(
        "INC-20261124-001"
    ).to_markdown()


def test_out_must_be_a_folder(tmp_path: Path) -> None:
    occupied = tmp_path / "file"
    occupied.write_text("x")
    with pytest.raises(BadInput, match="not a directory"):
        sp.output_dir(str(occupied))
    assert sp.output_dir(str(tmp_path / "new" / "status")).is_dir()


def test_report_command_bad_out_exits_2_before_running_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from opsrunner import cli
    from opsrunner.cli.report import report as report_command

    monkeypatch.setitem(cli.cli.commands, "report", report_command)
    occupied = tmp_path / "index.html"
    occupied.write_text("x")
    monkeypatch.setattr(sp, "gather", lambda *_: pytest.fail("ran the playbook"))
    with pytest.raises(SystemExit) as exited:
        cli.main(["--memory-dir", str(tmp_path / "mem"), "report", "--out", str(occupied)])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == f"opsrunner: error: --out {occupied}: not a directory"


def test_site_is_0640_and_masks_secrets_in_host_text(tmp_path: Path) -> None:
    # Host text written before the recorder masked it (or missed by it) must not reach the page meant to be
    # shared, its incident pages and raw records, or the summary: everything passes through the masker.
    secrets = ["hunter2-PLANTED", "tok-PLANTED-9f8e7d", "dbpass-PLANTED"]
    bearer = f"Authorization: Bearer {secrets[1]}"
    store = MemoryStore(tmp_path / "mem")
    history = store.path(hb.HISTORY_FILE)
    history.parent.mkdir(parents=True, exist_ok=True)
    line = {"coordinator-api": down(f"login failed: password={secrets[0]}"), "redis": up(bearer)}
    history.write_text(json.dumps(entry(5, {"t1": {"unreachable": "", "services": line}})) + "\n")
    incidents = IncidentStore(store)
    incidents.save(incident(1, "open", 1, summary="t2 coordinator-api /health failing"))
    raw = store.path("incidents", "INC-20261124-001.md")
    raw.write_text(raw.read_text() + f"\n{bearer}\npostgresql://ops:{secrets[2]}@db/aitbc\n")
    failed_backup = {"msg": f"cannot reach postgresql://ops:{secrets[2]}@db/aitbc"}
    run = record(
        TaskResult("t1", "b", "aitbc.ops.backup_info", True, failed_backup),
        failures=[TaskFailure("t2", "t", "a", f"password={secrets[0]}", unreachable=True)],
    )
    page = page_of(store, run)
    out = tmp_path / "out"
    index = sp.write_site(out, page, store)
    written = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"index.html", "INC-20261124-001.md", "INC-20261124-001.html"}
    for path in written:
        assert oct(path.stat().st_mode & 0o777) == "0o640", path
        text = path.read_text()
        assert not [s for s in secrets if s in text], path
    assert (
        "password=" in index.read_text()
        and "Bearer" in (out / "incidents" / "INC-20261124-001.md").read_text()
    )
    told = json.dumps(sp.summary(page, index, 0)) + sp.summary_line(page, index, 0)
    assert not [s for s in secrets if s in told], told
