"""What the fault tests share: a stack of one's own on this machine (process services from a one-file
inventory, local connection), a local webhook that receives pages, and the opsrunner CLI.

Each test makes its own inventory, memory folder and processes in its tmp_path, on free loopback ports, and
stops what it started by pid.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from ports import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def opsrunner(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    return subprocess.run(
        [str(BIN / "opsrunner"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Site:
    """A one-file inventory of web services (python3 -m http.server), one per host, all on this machine."""

    root: Path
    inventory: Path
    memory: Path
    ports: dict[str, int] = field(default_factory=dict)

    def pidfile(self, host: str) -> Path:
        return self.root / host / "run" / "web.pid"

    def pid(self, host: str) -> int | None:
        try:
            pid = int(self.pidfile(host).read_text().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return opsrunner("--memory-dir", str(self.memory), *args, "-i", str(self.inventory), cwd=self.root,
                         timeout=timeout)  # fmt: skip

    def stop_all(self) -> None:
        for host in self.ports:
            pid = self.pid(host)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)


# These sites share this machine with whatever else listens on it: the listener check would see those.
QUIET = {"heartbeat_security_listeners": False}


def web_site(
    tmp_path: Path,
    hosts: list[str],
    extra: dict | None = None,
    command: str | None = None,
    service: dict | None = None,
) -> Site:
    """The inventory: each host runs `web`, its own port, state under tmp_path/<host>. ``service``: keys
    that replace or add to web's catalogue entry (databases, backup, app_root, probes)."""
    site = Site(tmp_path, tmp_path / "hosts.yml", tmp_path / "memory")
    inventory_hosts = {}
    for host in hosts:
        port = site.ports[host] = free_port()
        root = tmp_path / host
        for folder in ("run", "log", "www"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        inventory_hosts[host] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "aitbc_root": str(root),
            "web_port": port,
        }
    www = "--bind 127.0.0.1 --directory {{ aitbc_root }}/www"
    serve = command or f"{sys.executable} -m http.server {{{{ web_port }}}} {www}"
    web = {
        "backend": "process",
        "command": serve,
        "port": "{{ web_port }}",
        "url": "http://127.0.0.1:{{ web_port }}",
        "pidfile": "{{ aitbc_root }}/run/web.pid",
        "log_file": "{{ aitbc_root }}/log/web.log",
        "probes": [{"type": "http", "path": "/"}],
        **(service or {}),
    }
    site.inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {"aitbc_services": {"web": web}, **QUIET, **(extra or {})},
                    "hosts": inventory_hosts,
                }
            }
        )
    )
    return site


@dataclass
class Webhook:
    """A local receiver of apprise json:// pages."""

    url: str
    pages: list[dict] = field(default_factory=list)


@contextmanager
def webhook() -> Iterator[Webhook]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Webhook(f"json://127.0.0.1:{server.server_address[1]}/hook", received)
    finally:
        server.shutdown()
        server.server_close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_bit(path: Path, offset: int | None = None, bit: int = 0) -> int:
    """Flip one bit of a file in place (the byte in its middle unless ``offset``); returns the offset."""
    data = bytearray(path.read_bytes())
    where = len(data) // 2 if offset is None else offset
    data[where] ^= 1 << bit
    path.write_bytes(bytes(data))
    return where


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of a GET (an error status is an answer, not an exception)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URLs only
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(check, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.1)
    return bool(check())


@dataclass
class EscalationStory:
    """What `escalate_twice` saw: the pages' titles, the two incidents and their tickets."""

    titles: list[str]
    first: Any
    second: Any


def escalate_twice(tmp_path: Path, tracker: dict[str, Any]) -> EscalationStory:
    """A service that cannot start, twice: each time paged on open, escalated after its one restart (a
    ticket opens the first time and is noted the second), and resolved once it runs again (the ticket is
    noted). ``tracker`` is the inventory's `aitbc_tracker`."""
    from opsrunner.incidents import IncidentStore
    from opsrunner.memory import MemoryStore

    broken = f"{sys.executable} -c 'import sys; sys.exit(3)'"
    with webhook() as hook:
        settings = {
            "heartbeat_failure_threshold": 1,
            "heartbeat_max_restarts": 1,
            "heartbeat_restart_window": 2,
            "heartbeat_restart_timeout": 3,
            "aitbc_alert_urls": [hook.url],
            "aitbc_tracker": tracker,
        }
        site = web_site(tmp_path, ["web1"], extra=settings, command=broken)
        good = web_site(tmp_path / "good", ["web1"], extra=settings).inventory.read_text()
        good = good.replace(str(tmp_path / "good"), str(tmp_path))
        broken_inventory = site.inventory.read_text()
        store = IncidentStore(MemoryStore(site.memory))
        found = []
        for _round in range(2):
            site.inventory.write_text(broken_inventory)
            assert [site.run("heartbeat").returncode for _beat in range(2)] == [1, 1]
            (incident,) = store.active().values()
            assert incident.escalated, incident.timeline
            site.inventory.write_text(good)
            beats = [site.run("service", "start", "web").returncode]
            beats += [site.run("heartbeat").returncode for _beat in range(2)]  # the 2nd: budget window over
            assert beats[0] == 0 and beats[-1] == 0, beats
            found.append(store.get(incident.id))
            assert not found[-1].active, found[-1].timeline
            site.stop_all()  # it dies again (a stop by hand would hold it: the heartbeat would leave it be)
        return EscalationStory([str(page.get("title", "")) for page in hook.pages], *found)
