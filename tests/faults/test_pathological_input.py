"""Fault: pathological input from the network. A server that trickles its header bytes is a timed-out
probe, and the health module (a real Ansible run) returns on time instead of waiting for the probe thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

TRICKLE_SECONDS = 30.0


@pytest.fixture
def trickling_server() -> Iterator[int]:
    """Accepts connections and answers a status line, then one header byte every 0.2 s for 30 s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                end = time.monotonic() + TRICKLE_SECONDS
                while time.monotonic() < end and not stop.is_set():
                    conn.sendall(b"X")
                    time.sleep(0.2)
            except OSError:
                pass  # the probe hung up: what it should do

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _address = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


def test_a_header_trickling_server_does_not_hold_the_health_module(
    tmp_path: Path, ansible_playbook, trickling_server: int
) -> None:
    probe = {"type": "http", "name": "trickle", "url": f"http://127.0.0.1:{trickling_server}/", "timeout": 1}
    play = [
        {
            "name": "Probe a trickling server",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Probe",
                    "aitbc.ops.health": {"probes": [probe], "fail_on_unhealthy": False},
                    "register": "probed",
                },
                {"name": "Show", "ansible.builtin.debug": {"msg": "{{ probed.results | to_json }}"}},
            ],
        }
    ]
    playbook = tmp_path / "probe.yml"
    playbook.write_text(yaml.safe_dump(play))

    started = time.monotonic()
    done = ansible_playbook(str(playbook), "-i", "localhost,", "-c", "local", timeout=TRICKLE_SECONDS)
    elapsed = time.monotonic() - started

    assert done.rc == 0, done.stdout + done.stderr
    assert "timed out after 1 s" in done.stdout
    # A run of ansible-playbook takes about 2-3 s here; the module's own wait was 1 s, not the 30 s trickle.
    assert elapsed < TRICKLE_SECONDS / 3, f"the run took {elapsed:.1f} s"
