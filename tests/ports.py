"""Free loopback ports for the servers tests start.

A port from bind(0) comes from the kernel's ephemeral range, the range every outgoing connection takes its
local port from: between the pick and the server's own bind, some client of another test can take it (seen
in CI: "address already in use" at a service's start). These ports are picked below that range instead.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 10000


def ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port free on loopback now, outside the ephemeral range."""
    top = max(ephemeral_floor(), LOWEST + 1000)
    for port in random.sample(range(LOWEST, top), 500):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {LOWEST}-{top}")
