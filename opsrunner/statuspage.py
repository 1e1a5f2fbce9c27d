"""The page `opsrunner report` writes (the command: cli/report.py): one static, self-contained HTML
status page that opens offline.

Sources: the heartbeat history (incidents/.heartbeat-history.jsonl, one line per heartbeat) for the grid
and the uptime timeline; the incident records; and one read-only run of playbooks/report.yml for the
live backup and release facts of each host. The page has inline CSS, no script and no external URL;
incident records are rendered next to it (incidents/<id>.html, with the raw .md) so its links work
from a USB stick.

Exit codes: 0 written (whatever the stack's health), 2 bad input, 3 every host unreachable.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .heartbeat import HISTORY_FILE, HOST_SERVICE
from .incidents import Incident, IncidentStore
from .memory import MemoryStore, atomic_write, format_time, parse_time, utcnow
from .recorder import RunRecord
from .redact import mask_secrets
from .report import age_text
from .runner import Runner, RunRequest
from .settings import BadInput

DEFAULT_OUT = "status"
DEFAULT_HEARTBEATS = 48
RECENT_RESOLVED_DAYS = 7
DEFAULT_BACKUP_MAX_AGE_H = 26.0
THRESHOLDS_TASK = "Backup freshness thresholds"
SITE_TASK = "Site facts"
# The page's name when the report run does not say (playbooks/report.yml sends ops_site_name).
DEFAULT_SITE = "Fleet"
# The page carries what hosts reported (service details, incident diagnostics): readable by the owner and
# its group (the web server's, say), never by every local user.
PAGE_MODE = 0o640

# Grid cell / timeline block states.
UP, DOWN, UNREACHABLE, ABSENT = "up", "down", "unreachable", "absent"


# -- the page's data ----------------------------------------------------------------------------------


@dataclass
class Cell:
    host: str
    service: str
    state: str  # up | down | unreachable | absent
    detail: str = ""


@dataclass
class GridRow:
    host: str
    time: str  # the heartbeat this row comes from (ISO, UTC)
    unreachable: str
    cells: list[Cell]


@dataclass
class Grid:
    services: list[str]
    rows: list[GridRow]

    def cells(self) -> Iterable[Cell]:
        for row in self.rows:
            yield from row.cells


@dataclass
class Block:
    time: str
    state: str  # up | down | unreachable | absent (not checked in that heartbeat)
    detail: str = ""


@dataclass
class TimelineRow:
    host: str
    service: str
    blocks: list[Block]

    @property
    def uptime(self) -> float | None:
        """Percent of the heartbeats that checked the service in which it was up."""
        seen = [b for b in self.blocks if b.state in (UP, DOWN)]
        return 100.0 * sum(b.state == UP for b in seen) / len(seen) if seen else None


@dataclass
class BackupRow:
    host: str
    status: str  # ok | stale | unreachable | error
    newest: str = ""
    newest_age_s: float | None = None
    verified: str = ""  # yes | no | FAILED | INCOMPLETE
    newest_verified: str = ""
    verified_age_s: float | None = None
    threshold_h: float = DEFAULT_BACKUP_MAX_AGE_H
    detail: str = ""


@dataclass
class ReleaseRow:
    host: str
    service: str
    current: str = ""
    previous: str = ""
    deployed_at: str = ""
    deployed_by: str = ""
    error: str = ""
    state: str = "ok"  # ok | error | unreachable


@dataclass
class Facts:
    """What the report run says besides the modules' results (its debug tasks on the controller)."""

    thresholds: dict[str, float] = field(default_factory=dict)  # host -> backup freshness hours
    site: str = DEFAULT_SITE
    backup_hosts: set[str] | None = None  # hosts with backup sources; None: not known, show every host


@dataclass
class Page:
    generated: dt.datetime
    grid: Grid
    timeline: list[TimelineRow]
    heartbeats: int  # timeline length asked for
    history_times: list[str]  # times of the heartbeats in the timeline window, oldest first
    incidents: list[Incident]
    backups: list[BackupRow]
    releases: list[ReleaseRow]
    unreachable: dict[str, str] = field(default_factory=dict)  # hosts the report run could not reach
    notes: list[str] = field(default_factory=list)
    run_id: str = ""
    site: str = DEFAULT_SITE

    def down(self) -> list[Cell]:
        return [c for c in self.grid.cells() if c.state == DOWN]

    def active_incidents(self) -> list[Incident]:
        return [i for i in self.incidents if i.active]


# -- heartbeat history -> grid and timeline -------------------------------------------------------------


def read_history(store: MemoryStore, limit: int) -> list[dict[str, Any]]:
    """The last `limit` heartbeats, oldest first; unreadable lines (a torn tail) are skipped."""
    path = store.path(HISTORY_FILE)
    if not path.is_file():
        return []
    entries: list[dict[str, Any]] = []
    for line in reversed(path.read_text(errors="replace").splitlines()):
        if len(entries) == limit:
            break
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("hosts"), dict) and entry.get("time"):
            entries.append(entry)
    return entries[::-1]


def service_order(services: Iterable[str]) -> list[str]:
    """Alphabetical, with the host's own checks last."""
    return sorted(set(services), key=lambda s: (s == HOST_SERVICE, s))


def _cell(host: str, service: str, seen: dict[str, Any]) -> Cell:
    if seen.get("unreachable"):
        return Cell(host, service, UNREACHABLE, f"host unreachable: {seen['unreachable']}")
    state = (seen.get("services") or {}).get(service)
    if state is None:
        return Cell(host, service, ABSENT)
    return Cell(host, service, UP if state.get("ok") else DOWN, str(state.get("detail") or ""))


def build_grid(history: list[dict[str, Any]]) -> Grid:
    """Hosts x services as each host's latest heartbeat saw them (a --limit run leaves the others)."""
    latest: dict[str, tuple[str, dict[str, Any]]] = {}
    for entry in history:
        for host, seen in entry["hosts"].items():
            latest[host] = (entry["time"], seen or {})
    services = service_order(s for _, seen in latest.values() for s in seen.get("services") or {})
    if latest and not services:  # every host unreachable: one column still shows it
        services = [HOST_SERVICE]
    rows = [
        GridRow(host, time, str(seen.get("unreachable") or ""), [_cell(host, s, seen) for s in services])
        for host, (time, seen) in sorted(latest.items())
    ]
    return Grid(services, rows)


def build_timeline(history: list[dict[str, Any]]) -> list[TimelineRow]:
    """One row per host + service seen in the window; one block per heartbeat, oldest first."""
    pairs: set[tuple[str, str]] = set()
    for entry in history:
        for host, seen in entry["hosts"].items():
            pairs |= {(host, service) for service in (seen or {}).get("services") or {}}
    hosts = sorted({host for host, _ in pairs})
    rows = []
    for host in hosts:
        for service in service_order(s for h, s in pairs if h == host):
            blocks = [_block(entry, host, service) for entry in history]
            rows.append(TimelineRow(host, service, blocks))
    return rows


def _block(entry: dict[str, Any], host: str, service: str) -> Block:
    seen = entry["hosts"].get(host)
    if seen is None:
        return Block(entry["time"], ABSENT, "not checked")
    cell = _cell(host, service, seen)
    return Block(entry["time"], cell.state, cell.detail or ("not checked" if cell.state == ABSENT else ""))


# -- incidents -----------------------------------------------------------------------------------------


def select_incidents(incidents: list[Incident], now: dt.datetime) -> list[Incident]:
    """Open and acknowledged ones (newest first), then those resolved within RECENT_RESOLVED_DAYS."""
    since = now - dt.timedelta(days=RECENT_RESOLVED_DAYS)
    active = sorted((i for i in incidents if i.active), key=lambda i: (i.opened, i.id), reverse=True)
    recent = [i for i in incidents if not i.active and i.resolved and i.resolved >= since]
    recent.sort(key=lambda i: (i.resolved or i.updated, i.id), reverse=True)
    return active + recent


# -- live facts (playbooks/report.yml) ------------------------------------------------------------------


def unreachable_hosts(record: RunRecord) -> dict[str, str]:
    found = {f.host: f.message for f in record.failures if f.unreachable}
    for host, stats in record.hosts.items():
        if stats.unreachable and host not in found:
            found[host] = "unreachable"
    return found


def thresholds_from(message: Any) -> dict[str, float]:
    """host -> hours from the thresholds task; 0 (the heartbeat's check is off) or junk -> the default."""
    found: dict[str, float] = {}
    if not isinstance(message, dict):
        return found
    for host, value in message.items():
        try:
            hours = float(value)
        except (TypeError, ValueError):
            continue
        found[str(host)] = hours if hours > 0 else DEFAULT_BACKUP_MAX_AGE_H
    return found


def site_from(message: Any) -> tuple[str, set[str] | None]:
    """(site name, hosts with backup sources) from the site facts task; junk -> the defaults."""
    if not isinstance(message, dict):
        return DEFAULT_SITE, None
    name = message.get("site")
    site = name.strip() if isinstance(name, str) and name.strip() else DEFAULT_SITE
    hosts = message.get("backup_hosts")
    if not isinstance(hosts, list):
        return site, None
    return site, {str(h) for h in hosts}


def _verified_text(row: dict[str, Any]) -> str:
    if not row.get("complete", True):
        return "INCOMPLETE"
    return {True: "yes", False: "FAILED"}.get(row.get("verified"), "no")


def backup_row(host: str, result: dict[str, Any], failed: bool, threshold_h: float) -> BackupRow:
    if failed:
        return BackupRow(host, "error", threshold_h=threshold_h, detail=str(result.get("msg") or "failed"))
    newest = result.get("newest") or {}
    verified = result.get("newest_verified") or {}
    age = verified.get("age_s")
    fresh = age is not None and float(age) <= threshold_h * 3600
    if not newest:
        detail = "no backup set"
    elif not verified:
        detail = "no verified set"
    else:
        detail = "" if fresh else f"newest verified set older than {threshold_h:g} h"
    return BackupRow(
        host,
        "ok" if fresh else "stale",
        newest=str(newest.get("set") or ""),
        newest_age_s=newest.get("age_s"),
        verified=_verified_text(newest) if newest else "",
        newest_verified=str(verified.get("set") or ""),
        verified_age_s=age,
        threshold_h=threshold_h,
        detail=detail,
    )


def backup_rows(
    record: RunRecord,
    thresholds: dict[str, float],
    unreachable: dict[str, str],
    backup_hosts: set[str] | None = None,
) -> list[BackupRow]:
    """One row per host with backup sources (every host when that is not known): a host whose services
    keep no data has no backups to be stale."""
    rows = {
        host: BackupRow(
            host, "unreachable", detail=message, threshold_h=thresholds.get(host, DEFAULT_BACKUP_MAX_AGE_H)
        )
        for host, message in unreachable.items()
        if backup_hosts is None or host in backup_hosts
    }
    for result in record.results_for("aitbc.ops.backup_info"):
        limit = thresholds.get(result.host, DEFAULT_BACKUP_MAX_AGE_H)
        rows[result.host] = backup_row(result.host, result.result, result.failed, limit)
    return [rows[host] for host in sorted(rows)]


def release_rows(record: RunRecord, unreachable: dict[str, str]) -> list[ReleaseRow]:
    rows = [ReleaseRow(host, "-", error=message, state=UNREACHABLE) for host, message in unreachable.items()]
    for result in record.results_for("aitbc.ops.release_info"):
        items = result.result.get("results") or [result.result]
        for item in items:
            if item.get("skipped"):
                continue
            service = str(item.get("item") or "-")
            if item.get("failed") or (result.failed and "current" not in item):
                error = str(item.get("msg") or "failed")
                rows.append(ReleaseRow(result.host, service, error=error, state="error"))
                continue
            history = item.get("history") or []
            last = history[-1] if history else {}
            rows.append(
                ReleaseRow(
                    result.host,
                    service,
                    current=str(item.get("current") or ""),
                    previous=str(item.get("previous") or ""),
                    deployed_at=str(last.get("at") or ""),
                    deployed_by=str(last.get("by") or ""),
                )
            )
    return sorted(rows, key=lambda r: (r.host, r.service))


def run_notes(record: RunRecord) -> list[str]:
    """What went wrong in the fact run, besides unreachable hosts (those are shown in their rows)."""
    notes = [f.describe() for f in record.failures if not f.unreachable]
    if record.outcome in ("error", "config-error", "canceled"):
        notes.insert(0, f"the fact run ended with {record.outcome} (exit {record.exit_code})")
    return notes


# -- rendering -----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)
def masked(text: str) -> str:
    """Host text with whatever looks secret masked (the collection's one masker, opsrunner/redact.py)."""
    return mask_secrets(text)


def esc(value: object) -> str:
    """Every value on the page goes through here: masked, then escaped."""
    return html.escape(masked(str(value)), quote=True)


def when_text(iso: str, now: dt.datetime) -> str:
    """'2026-11-24 10:15:02 UTC (3m ago)'; anything unparseable comes back as it was."""
    try:
        moment = parse_time(iso)
    except (TypeError, ValueError):
        return iso or "-"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({age_text(max((now - moment).total_seconds(), 0))} ago)"


def when_html(iso: str, now: dt.datetime) -> str:
    """The time, and how long ago on a second, muted line (for table cells)."""
    try:
        moment = parse_time(iso)
    except (TypeError, ValueError):
        return esc(iso or "-")
    ago = age_text(max((now - moment).total_seconds(), 0))
    return f'{moment:%Y-%m-%d %H:%M:%S} UTC<span class="ago">{esc(ago)} ago</span>'


def ago_text(iso: str, now: dt.datetime) -> str:
    try:
        return f"{age_text(max((now - parse_time(iso)).total_seconds(), 0))} ago"
    except (TypeError, ValueError):
        return iso or "-"


def uptime_text(value: float | None) -> str:
    if value is None:
        return "–"
    return "100%" if value >= 100 else f"{value:.1f}%"


CSS = """
:root { --up:#1a7f37; --up-bg:#dafbe1; --down:#cf222e; --down-bg:#ffebe9; --warn:#9a6700;
  --warn-bg:#fff8c5; --muted:#59636e; --line:#d0d7de; --head:#f6f8fa; --text:#1f2328; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--text); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; }
header { padding: 18px 28px 14px; background: var(--head); border-bottom: 1px solid var(--line); }
header h1 { margin: 0; font-size: 22px; }
main { padding: 4px 28px 40px; max-width: 1400px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h2 .muted { font-size: 13px; font-weight: 400; }
.muted { color: var(--muted); }
.mono, code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
.banner { margin-top: 12px; padding: 10px 14px; border-radius: 6px; font-weight: 600; font-size: 15px; }
.banner.good { background: var(--up-bg); color: var(--up); border: 1px solid #aceebb; }
.banner.bad { background: var(--down-bg); color: var(--down); border: 1px solid #ffcecb; }
.banner.warn { background: var(--warn-bg); color: var(--warn); border: 1px solid #f5e0a0; }
.summary { margin-top: 8px; display: flex; gap: 18px; flex-wrap: wrap; color: var(--muted); }
.summary b { color: var(--text); }
table { border-collapse: collapse; margin: 4px 0; }
th, td { border: 1px solid var(--line); padding: 6px 10px; text-align: left; vertical-align: top; }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
td.host { font-weight: 600; white-space: nowrap; }
td.host .muted { display: block; font-weight: 400; font-size: 12px; }
td.cell { text-align: center; vertical-align: middle; min-width: 118px; max-width: 240px; }
td.cell.up { background: var(--up-bg); color: var(--up); }
td.cell.down { background: var(--down); color: #fff; font-weight: 700; }
td.cell.unreachable { background: var(--warn-bg); color: var(--warn); font-weight: 700; }
td.cell.absent { color: #8c959f; }
td.cell .detail { display: block; margin-top: 2px; font-weight: 400; font-size: 11.5px;
  overflow-wrap: anywhere; }
.blocks { display: flex; gap: 2px; align-items: center; }
.b { display: inline-block; width: 9px; height: 18px; border-radius: 2px; background: #eaeef2; }
.b.up { background: #2da44e; } .b.down { background: #cf222e; } .b.unreachable { background: #d4a72c; }
table.timeline td { padding: 3px 10px; }
td.pct { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.pct.bad { color: var(--down); font-weight: 700; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
  white-space: nowrap; }
.pill.ok { background: var(--up-bg); color: var(--up); }
.pill.bad { background: var(--down-bg); color: var(--down); }
.pill.warn { background: var(--warn-bg); color: var(--warn); }
.pill.neutral { background: #eaeef2; color: var(--muted); }
.legend { display: flex; gap: 14px; margin: 6px 0; color: var(--muted); font-size: 12.5px; }
.legend .b { vertical-align: middle; margin-right: 4px; }
.empty { color: var(--muted); font-style: italic; }
ul.notes { margin: 6px 0; padding-left: 20px; }
pre { background: var(--head); border: 1px solid var(--line); border-radius: 6px; padding: 10px;
  white-space: pre-wrap; overflow-wrap: anywhere; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
a { color: #0969da; }
.ago { display: block; color: var(--muted); font-size: 12px; }
td.nowrap, a.mono { white-space: nowrap; }
tr.first td { border-top: 2px solid #afb8c1; }
"""

PILL_CLASS = {
    "ok": "ok",
    "up": "ok",
    "yes": "ok",
    "resolved": "ok",
    "stale": "bad",
    "error": "bad",
    "FAILED": "bad",
    "INCOMPLETE": "bad",
    "open": "bad",
    "unreachable": "warn",
    "acknowledged": "warn",
    "no": "warn",
}


def pill(text: str) -> str:
    return f'<span class="pill {PILL_CLASS.get(text, "neutral")}">{esc(text)}</span>'


def document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def render_page(page: Page) -> str:
    parts = [
        render_header(page),
        "<main>",
        render_notes(page),
        render_grid(page),
        render_incidents(page),
        render_timeline(page),
        render_backups(page),
        render_releases(page),
        render_footer(page),
        "</main>",
    ]
    return document(f"{page.site} status · {format_time(page.generated)}", "\n".join(p for p in parts if p))


def render_banner(page: Page) -> str:
    """One line that says whether anything is wrong: down services first, then unreachable hosts."""
    unreachable = sorted({r.host for r in page.grid.rows if r.unreachable} | set(page.unreachable))
    problems = [f"{c.host} {c.service} down" for c in page.down()] + [f"{h} unreachable" for h in unreachable]
    if problems:
        shown = ", ".join(problems[:6]) + (f" and {len(problems) - 6} more" if len(problems) > 6 else "")
        noun = "problem" if len(problems) == 1 else "problems"
        return f'<div class="banner bad">{len(problems)} {noun}: {esc(shown)}</div>'
    if not page.grid.rows:
        return (
            '<div class="banner warn">No heartbeat recorded yet: run <code>opsrunner heartbeat</code>.</div>'
        )
    active = len(page.active_incidents())
    extra = f" · {active} incident(s) still open" if active else ""
    return f'<div class="banner good">All services up at the latest heartbeat{extra}</div>'


def render_header(page: Page) -> str:
    down, active, banner = page.down(), page.active_incidents(), render_banner(page)
    cells = list(page.grid.cells())
    summary = [
        f"Generated <b>{esc(f'{page.generated:%Y-%m-%d %H:%M:%S}')} UTC</b>",
        f"Latest heartbeat <b>{esc(_latest(page))}</b>",
        f"Services <b>{sum(c.state == UP for c in cells)} up, {len(down)} down</b>",
        f"Active incidents <b>{len(active)}</b>",
    ]
    spans = "".join(f"<span>{s}</span>" for s in summary)
    title = f"<h1>{esc(page.site)} status</h1>"
    return f'<header>\n{title}\n{banner}\n<div class="summary">{spans}</div>\n</header>'


def _latest(page: Page) -> str:
    times = [row.time for row in page.grid.rows]
    return when_text(max(times), page.generated) if times else "none"


def render_notes(page: Page) -> str:
    notes = [f"{host}: unreachable for this report ({msg})" for host, msg in sorted(page.unreachable.items())]
    notes += page.notes
    if not notes:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return f'<h2>Report run</h2>\n<ul class="notes">{items}</ul>'


def render_grid(page: Page) -> str:
    grid = page.grid
    title = '<h2 id="grid">Services <span class="muted">· latest heartbeat per host</span></h2>'
    if not grid.rows:
        return f'{title}\n<p class="empty">No heartbeat history in this memory store.</p>'
    head = "".join(f"<th>{esc(s)}</th>" for s in grid.services)
    rows = [render_grid_row(row, page.generated) for row in grid.rows]
    return f'{title}\n<table class="grid">\n<tr><th>Host</th>{head}</tr>\n' + "\n".join(rows) + "\n</table>"


def render_grid_row(row: GridRow, now: dt.datetime) -> str:
    checked = f"checked {ago_text(row.time, now)}"
    return (
        f'<tr data-host="{esc(row.host)}"><td class="host">{esc(row.host)}'
        f'<span class="muted" title="{esc(row.time)}">{esc(checked)}</span></td>'
        f"{''.join(render_cell(c) for c in row.cells)}</tr>"
    )


def render_cell(cell: Cell) -> str:
    label = {UP: "up", DOWN: "DOWN", UNREACHABLE: "UNREACHABLE", ABSENT: "—"}[cell.state]
    visible = f'<span class="detail">{esc(cell.detail)}</span>' if cell.state == DOWN and cell.detail else ""
    title = f' title="{esc(cell.detail)}"' if cell.detail else ""
    return (
        f'<td class="cell {cell.state}" data-host="{esc(cell.host)}" data-service="{esc(cell.service)}" '
        f'data-state="{cell.state}"{title}>{label}{visible}</td>'
    )


def render_timeline(page: Page) -> str:
    times = page.history_times
    span = f"last {len(times)} heartbeat(s), oldest left" if times else "no heartbeats"
    title = f'<h2 id="uptime">Uptime <span class="muted">· {esc(span)}</span></h2>'
    if not page.timeline:
        return f'{title}\n<p class="empty">No heartbeat history yet.</p>'
    legend = "".join(
        f'<span><span class="b {state}"></span>{label}</span>'
        for state, label in (
            (UP, "up"),
            (DOWN, "down"),
            (UNREACHABLE, "host unreachable"),
            (ABSENT, "no data"),
        )
    )
    window = f"{when_text(times[0], page.generated)} → {when_text(times[-1], page.generated)}"
    spans: dict[str, int] = {}
    for row in page.timeline:
        spans[row.host] = spans.get(row.host, 0) + 1
    rows = []
    for index, row in enumerate(page.timeline):
        first = index == 0 or page.timeline[index - 1].host != row.host
        rows.append(render_timeline_row(row, spans[row.host] if first else 0))
    return (
        f'{title}\n<div class="legend">{legend}<span>{esc(window)}</span></div>\n'
        '<table class="timeline">\n<tr><th>Host</th><th>Service</th><th>Heartbeats</th><th>Uptime</th></tr>\n'
        + "\n".join(rows)
        + "\n</table>"
    )


def render_timeline_row(row: TimelineRow, host_rows: int = 1) -> str:
    """One host + service; `host_rows` > 0 starts the host's group (its name spans that many rows)."""
    blocks = "".join(f'<span class="b {b.state}" title="{esc(_block_title(b))}"></span>' for b in row.blocks)
    uptime = row.uptime
    bad = " bad" if uptime is not None and uptime < 100 else ""
    first = ' class="first"' if host_rows else ""
    host = f'<td class="host" rowspan="{host_rows}">{esc(row.host)}</td>' if host_rows else ""
    return (
        f'<tr{first} data-host="{esc(row.host)}" data-service="{esc(row.service)}">'
        f"{host}<td>{esc(row.service)}</td>"
        f'<td><div class="blocks">{blocks}</div></td><td class="pct{bad}">{uptime_text(uptime)}</td></tr>'
    )


def _block_title(block: Block) -> str:
    return f"{block.time} {block.state}" + (f": {block.detail}" if block.detail else "")


def render_incidents(page: Page) -> str:
    title = (
        f'<h2 id="incidents">Incidents <span class="muted">· open and acknowledged, then resolved '
        f"in the last {RECENT_RESOLVED_DAYS} days</span></h2>"
    )
    if not page.incidents:
        none = f"No open incident, none resolved in the last {RECENT_RESOLVED_DAYS} days."
        return f'{title}\n<p class="empty">{none}</p>'
    head = "".join(
        f"<th>{h}</th>"
        for h in ("Incident", "Status", "Host", "Service", "Check", "Summary", "Opened", "Updated")
    )
    rows = [render_incident_row(i, page.generated) for i in page.incidents]
    return f"{title}\n<table>\n<tr>{head}</tr>\n" + "\n".join(rows) + "\n</table>"


def incident_href(incident: Incident) -> str:
    return f"incidents/{incident.id}.html"


def render_incident_row(incident: Incident, now: dt.datetime) -> str:
    status = pill(incident.status) + (
        " " + pill("escalated") if incident.escalated and incident.active else ""
    )
    return (
        f'<tr data-incident="{esc(incident.id)}" data-status="{esc(incident.status)}">'
        f'<td><a class="mono" href="{esc(incident_href(incident))}">{esc(incident.id)}</a></td>'
        f'<td class="nowrap">{status}</td><td class="nowrap">{esc(incident.host)}</td>'
        f'<td class="nowrap">{esc(incident.service)}</td><td>{esc(incident.check)}</td>'
        f"<td>{esc(incident.summary)}</td>"
        f'<td class="nowrap">{when_html(format_time(incident.opened), now)}</td>'
        f'<td class="nowrap">{when_html(format_time(incident.updated), now)}</td></tr>'
    )


def render_backups(page: Page) -> str:
    title = '<h2 id="backups">Backups <span class="muted">· newest set per host, read live</span></h2>'
    if not page.backups:
        return f'{title}\n<p class="empty">No host reported its backups.</p>'
    headers = ("Host", "Status", "Newest set", "Age", "Verified", "Newest verified set", "Age", "Stale after")
    head = "".join(f"<th>{h}</th>" for h in headers)
    rows = [render_backup_row(row) for row in page.backups]
    return f"{title}\n<table>\n<tr>{head}</tr>\n" + "\n".join(rows) + "\n</table>"


def render_backup_row(row: BackupRow) -> str:
    status = f"{pill(row.status)} {_detail(row.status, row.detail)}"
    cells = [
        esc(row.newest or "-"),
        esc(age_text(row.newest_age_s)),
        pill(row.verified) if row.verified else "-",
        esc(row.newest_verified or "-"),
        esc(age_text(row.verified_age_s)),
        esc(f"{row.threshold_h:g} h"),
    ]
    body = "".join(f"<td>{c}</td>" for c in cells)
    return (
        f'<tr data-host="{esc(row.host)}" data-backup="{esc(row.status)}">'
        f'<td class="host">{esc(row.host)}</td><td>{status}</td>{body}</tr>'
    )


def _detail(state: str, text: str) -> str:
    """A muted note; an unreachable host's long ssh message goes in a tooltip (the report run lists it)."""
    if not text:
        return ""
    if state == UNREACHABLE:
        return f'<span class="muted" title="{esc(text)}">see report run</span>'
    return f'<span class="muted">{esc(text)}</span>'


def render_releases(page: Page) -> str:
    title = '<h2 id="releases">Releases <span class="muted">· deployable services, read live</span></h2>'
    if not page.releases:
        return f'{title}\n<p class="empty">No deployable service reported a release.</p>'
    head = "".join(f"<th>{h}</th>" for h in ("Host", "Service", "Current", "Previous", "Deployed", "By"))
    rows = [render_release_row(row, page.generated) for row in page.releases]
    return f"{title}\n<table>\n<tr>{head}</tr>\n" + "\n".join(rows) + "\n</table>"


def render_release_row(row: ReleaseRow, now: dt.datetime) -> str:
    start = f'<tr data-host="{esc(row.host)}" data-service="{esc(row.service)}">'
    lead = f'<td class="host">{esc(row.host)}</td><td>{esc(row.service)}</td>'
    if row.state != "ok":
        return f'{start}{lead}<td colspan="4">{pill(row.state)} {_detail(row.state, row.error)}</td></tr>'
    deployed = when_html(row.deployed_at, now) if row.deployed_at else "-"
    cells = [
        f"<b>{esc(row.current or '-')}</b>",
        esc(row.previous or "-"),
        deployed,
        esc(row.deployed_by or "-"),
    ]
    return start + lead + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def render_footer(page: Page) -> str:
    run = f"report run {page.run_id} · " if page.run_id else ""
    return f"<footer>{esc(run)}generated {esc(format_time(page.generated))} by opsrunner report</footer>"


def render_incident(incident: Incident, now: dt.datetime) -> str:
    """One incident record as a page of its own (the raw record sits next to it as <id>.md)."""
    fields = [
        ("Status", pill(incident.status)),
        ("Severity", esc(incident.severity)),
        ("Host", esc(incident.host)),
        ("Service", esc(incident.service)),
        ("Check", esc(incident.check)),
        ("Opened", esc(when_text(format_time(incident.opened), now))),
        ("Updated", esc(when_text(format_time(incident.updated), now))),
        ("Resolved", esc(when_text(format_time(incident.resolved), now)) if incident.resolved else "-"),
        ("Escalated", "yes" if incident.escalated else "no"),
        ("Restarts", esc(incident.restarts)),
        ("Cause", esc(incident.cause or "-")),
        ("Resolution", esc(incident.resolution or "-")),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in fields)
    timeline = "".join(
        f'<tr><td class="mono">{esc(format_time(t.time))}</td><td>{esc(t.text)}</td></tr>'
        for t in incident.timeline
    )
    body = [
        f"<header>\n<h1>{esc(incident.id)}: {esc(incident.summary)}</h1>\n"
        f'<div class="summary"><a href="../index.html">← status page</a>'
        f'<a href="{esc(incident.id)}.md">raw record (.md)</a></div>\n</header>',
        "<main>",
        f"<h2>Record</h2>\n<table>{table}</table>",
        f"<h2>Timeline</h2>\n<table>{timeline}</table>" if timeline else "",
        f"<h2>Diagnostics</h2>\n<pre>{esc(incident.diagnostics)}</pre>" if incident.diagnostics else "",
        f"<h2>Debugging notes</h2>\n<pre>{esc(incident.debugging_notes)}</pre>"
        if incident.debugging_notes
        else "",
        f"<footer>rendered {esc(format_time(now))} by opsrunner report</footer>",
        "</main>",
    ]
    return document(f"{incident.id} · {incident.summary}", "\n".join(p for p in body if p))


# -- assembling and writing ----------------------------------------------------------------------------


def build_page(
    store: MemoryStore,
    record: RunRecord,
    facts: Facts,
    heartbeats: int,
    now: dt.datetime | None = None,
) -> Page:
    now = now or utcnow()
    history = read_history(store, heartbeats)
    unreachable = unreachable_hosts(record)
    return Page(
        generated=now,
        grid=build_grid(history),
        timeline=build_timeline(history),
        heartbeats=heartbeats,
        history_times=[entry["time"] for entry in history],
        incidents=select_incidents(IncidentStore(store).all(), now),
        backups=backup_rows(record, facts.thresholds, unreachable, facts.backup_hosts),
        releases=release_rows(record, unreachable),
        unreachable=unreachable,
        notes=run_notes(record),
        run_id=record.run_id,
        site=facts.site,
    )


def write_site(out: Path, page: Page, store: MemoryStore) -> Path:
    """<out>/index.html, and incidents/<id>.html + <id>.md for every incident the page links to."""
    for incident in page.incidents:
        folder = out / "incidents"
        raw = store.path("incidents", f"{incident.id}.md")
        text = raw.read_text() if raw.is_file() else incident.to_markdown()
        atomic_write(folder / f"{incident.id}.md", mask_secrets(text), mode=PAGE_MODE)
        atomic_write(
            folder / f"{incident.id}.html", render_incident(incident, page.generated), mode=PAGE_MODE
        )
    index = out / "index.html"
    atomic_write(index, render_page(page), mode=PAGE_MODE)
    return index


def output_dir(out: str) -> Path:
    """--out as an absolute folder, created; a file or an uncreatable path is bad input."""
    target = Path(out).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise BadInput(f"--out {out}: not a directory")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--out {out}: cannot create it: {exc.strerror or exc}") from None
    return target


def summary(page: Page, index: Path, code: int) -> dict[str, Any]:
    cells = list(page.grid.cells())
    return {
        "path": str(index),
        "exit_code": code,
        "run_id": page.run_id,
        "site": page.site,
        "generated": format_time(page.generated),
        "hosts": len(page.grid.rows),
        "services": {"up": sum(c.state == UP for c in cells), "down": len(page.down())},
        "down": [{"host": c.host, "service": c.service, "detail": masked(c.detail)} for c in page.down()],
        "heartbeats": len(page.history_times),
        "incidents": {"active": len(page.active_incidents()), "listed": len(page.incidents)},
        "backups": {"ok": sum(b.status == "ok" for b in page.backups), "total": len(page.backups)},
        "releases": len([r for r in page.releases if r.state == "ok"]),
        "unreachable": sorted(page.unreachable),
        "notes": [masked(note) for note in page.notes],
    }


def exit_code(record: RunRecord, unreachable: dict[str, str]) -> int:
    if record.hosts and set(record.hosts) <= set(unreachable):
        return 3
    if record.outcome in ("error", "config-error"):
        return record.exit_code
    return 0


def gather(runner: Runner, request: RunRequest) -> tuple[RunRecord, Facts]:
    """One read-only run of playbooks/report.yml: its record, and the facts of its controller tasks (the
    hosts' freshness thresholds, the site's name, which hosts have backups)."""
    facts = Facts()

    def collect(event: dict[str, Any]) -> None:
        data = event.get("event_data") or {}
        if event.get("event") != "runner_on_ok":
            return
        message = (data.get("res") or {}).get("msg")
        if data.get("task") == THRESHOLDS_TASK:
            facts.thresholds.update(thresholds_from(message))
        elif data.get("task") == SITE_TASK:
            facts.site, facts.backup_hosts = site_from(message)

    outcome = runner.run(request, on_event=collect)
    return outcome.record, facts


def summary_line(page: Page, index: Path, code: int) -> str:
    lines = [f"status page: {index}"]
    down = ", ".join(f"{c.host} {c.service}" for c in page.down()) or "none"
    lines.append(f"  services down: {down}; active incidents: {len(page.active_incidents())}")
    lines += [
        f"  ! {host} unreachable: {masked(message)}" for host, message in sorted(page.unreachable.items())
    ]
    lines += [f"  ! {masked(note)}" for note in page.notes]
    lines.append(f"report: written (exit {code}), run {page.run_id}")
    return "\n".join(lines)
