"""`opsrunner report` on the demo stack running on the SSH test hosts, opened in real headless Chromium.

A verified backup on t1, a healthy heartbeat, then the coordinator on t2 killed and two heartbeats that
only report (the second opens an incident): the page must show that cell down and every other one up,
link the incident to a record that exists, name no other host, and render to a screenshot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from stack import REPO, inventory_with, opsrunner

KEY = "statuspage-backup-key-4Rt9"  # stands in for the vaulted aitbc_backup_key
CHROMIUM_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("headless Chromium not installed (Debian package chromium; `make setup` installs it)")
    return found


def browse(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)


class Elements(HTMLParser):
    """Attributes of every element Chromium's serialized DOM holds."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))


def elements(dom: str) -> list[tuple[str, dict[str, str]]]:
    parser = Elements()
    parser.feed(dom)
    return parser.found


def kill(host, service: str) -> None:
    os.kill(int((host.state_dir / "run" / f"{service}.pid").read_text()), signal.SIGKILL)


def run_ok(*args: str, cwd: Path, env: dict[str, str] | None = None, codes: tuple[int, ...] = (0,)) -> str:
    done = opsrunner(*args, cwd=cwd, env=env)
    assert done.returncode in codes, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_status_page_shows_a_killed_coordinator_down_in_chromium(chromium, stack, tmp_path) -> None:
    inventory = str(
        inventory_with(
            stack,
            tmp_path / "inventory",
            group_vars={"aitbc_backup_root": str(tmp_path / "backups"), "aitbc_backup_key": KEY},
            # The page takes each host's freshness threshold from the heartbeat's variable (26 h when off).
            host_vars={"t1": {"heartbeat_backup_max_age_hours": 2}},
        )
        / "hosts.yml"
    )
    run_ok(
        "backup",
        "-i",
        inventory,
        "--limit",
        "t1",
        cwd=tmp_path,
        env={"OPSRUNNER_BACKUP_STORE": str(tmp_path / "store")},
    )
    run_ok("heartbeat", "-i", inventory, cwd=tmp_path)
    kill(stack.host("t2"), "coordinator-api")
    out = tmp_path / "status"
    try:
        for _ in range(2):  # the second failure opens the incident (threshold 2)
            run_ok("heartbeat", "-i", inventory, "--no-remediate", cwd=tmp_path, codes=(1,))
        summary = json.loads(run_ok("report", "-i", inventory, "--out", str(out), "--json", cwd=tmp_path))
    finally:
        run_ok("service", "start", "coordinator-api", "--limit", "t2", "-i", inventory, cwd=tmp_path)

    index = out / "index.html"
    assert summary["path"] == str(index) and summary["exit_code"] == 0
    assert [(d["host"], d["service"]) for d in summary["down"]] == [("t2", "coordinator-api")]
    assert summary["incidents"]["active"] == 1 and summary["unreachable"] == []
    assert summary["backups"] == {"ok": 1, "total": 3}

    dumped = browse(chromium, tmp_path / "profile", "--dump-dom", index.as_uri())
    assert dumped.returncode == 0 and "</html>" in dumped.stdout, dumped.stderr[-2000:]
    found = elements(dumped.stdout)
    cells = {
        (a["data-host"], a["data-service"]): a["data-state"]
        for tag, a in found
        if tag == "td" and "data-state" in a
    }
    assert cells[("t2", "coordinator-api")] == "down"
    assert {host for host, _ in cells} == {"t1", "t2", "t3"} and len(cells) == 3 * 6
    assert {key: state for key, state in cells.items() if state != "up"} == {
        ("t2", "coordinator-api"): "down"
    }
    down_cell = re.search(r'<td class="cell down"[^>]*>(.*?)</td>', dumped.stdout, flags=re.DOTALL)
    assert down_cell and "DOWN" in down_cell.group(1) and "coordinator-api" in down_cell.group(1)

    backups = {a["data-host"]: a["data-backup"] for tag, a in found if tag == "tr" and "data-backup" in a}
    assert backups == {"t1": "ok", "t2": "stale", "t3": "stale"}
    assert "2 h" in dumped.stdout  # t1's threshold, from heartbeat_backup_max_age_hours
    releases = [a for tag, a in found if tag == "tr" and a.get("data-service") == "coordinator-api"]
    assert {a["data-host"] for a in releases} >= {"t1", "t2", "t3"}

    links = [a.get("href") or a.get("src") for _, a in found if "href" in a or "src" in a]
    assert links, "the page links its incidents"
    for link in links:
        assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//", link, flags=re.IGNORECASE), link
        assert (out / link).is_file(), link
    [incident_link] = [
        a["href"] for tag, a in found if tag == "a" and a.get("href", "").startswith("incidents/")
    ]
    record = (out / incident_link).read_text()
    assert "t2 coordinator-api" in record and (out / incident_link).with_suffix(".md").is_file()

    screenshot = out / "status.png"
    shot = browse(
        chromium,
        tmp_path / "profile",
        f"--screenshot={screenshot}",
        "--window-size=1400,1600",
        index.as_uri(),
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
    keep = os.environ.get("STATUSPAGE_SCREENSHOT")
    if keep:  # where a person can look at it after the run
        shutil.copyfile(screenshot, keep)


@pytest.mark.integration
def test_report_exits_3_when_every_host_is_unreachable_and_still_writes_the_page(tmp_path) -> None:
    closed = 9  # discard: nothing listens there on these hosts' loopback
    hosts = {
        name: {
            "ansible_host": "127.0.0.1",
            "ansible_port": closed,
            "ansible_user": "root",
            "aitbc_root": str(tmp_path / name),
        }
        for name in ("ghost1", "ghost2")
    }
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"children": {"aitbc": {"hosts": hosts}}}})
    )
    (tmp_path / "inv" / "group_vars").symlink_to(REPO / "inventory" / "group_vars")
    out = tmp_path / "page"
    done = opsrunner(
        "report", "-i", str(tmp_path / "inv" / "hosts.yml"), "--out", str(out), "--json", cwd=tmp_path
    )
    assert done.returncode == 3, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["unreachable"] == ["ghost1", "ghost2"]
    text = (out / "index.html").read_text()
    assert 'data-backup="unreachable"' in text and "ghost2: unreachable for this report" in text

    occupied = tmp_path / "occupied"
    occupied.write_text("not a folder")
    bad = opsrunner("report", "-i", str(tmp_path / "inv" / "hosts.yml"), "--out", str(occupied), cwd=tmp_path)
    assert (
        bad.returncode == 2 and bad.stderr.strip() == f"opsrunner: error: --out {occupied}: not a directory"
    )
