# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network probes: a TCP connect, and Redis (PING, after AUTH when a password is given)."""

from __future__ import annotations

import socket
import time

from ansible_collections.aitbc.ops.plugins.module_utils._resp import resp_command
from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import (
    Outcome,
    Probe,
    ProbeError,
    remaining,
    show,
)


class TcpProbe(Probe):
    type_name = "tcp"
    options = {
        "host": {"type": "str", "default": "127.0.0.1"},
        "port": {"type": "int", "required": True},
    }

    def setup(self) -> None:
        if not 1 <= self.params["port"] <= 65535:
            raise ValueError(f"port {self.params['port']} is not between 1 and 65535")

    def default_name(self) -> str:
        return f"tcp:{self.params['host']}:{self.params['port']}"

    def run(self, deadline: float) -> Outcome:
        start = time.monotonic()
        address = (self.params["host"], self.params["port"])
        socket.create_connection(address, timeout=remaining(deadline)).close()
        return True, f"connected in {(time.monotonic() - start) * 1000:.0f} ms", {}


def _recv_line(sock: socket.socket, deadline: float, limit: int = 65536) -> str:
    buf = b""
    while b"\r\n" not in buf:
        sock.settimeout(remaining(deadline))
        chunk = sock.recv(4096)
        if not chunk:
            raise ProbeError("connection closed by server" + (f" after {buf[:60]!r}" if buf else ""))
        buf += chunk
        if len(buf) > limit:
            raise ProbeError(f"reply longer than {limit} bytes")
    return buf.split(b"\r\n", 1)[0].decode("utf-8", "replace")


class RedisProbe(Probe):
    type_name = "redis"
    options = {
        "host": {"type": "str", "default": "127.0.0.1"},
        "port": {"type": "int", "default": 6379},
        "password": {"type": "str", "no_log": True},
    }

    setup = TcpProbe.setup

    def default_name(self) -> str:
        return f"redis:{self.params['host']}:{self.params['port']}"

    def run(self, deadline: float) -> Outcome:
        start = time.monotonic()
        with socket.create_connection(
            (self.params["host"], self.params["port"]), timeout=remaining(deadline)
        ) as sock:
            if self.params.get("password") is not None:
                sock.sendall(resp_command("AUTH", self.params["password"]))
                reply = _recv_line(sock, deadline)
                if not reply.startswith("+"):
                    return False, f"AUTH failed: {reply.lstrip('-')}", {}
            sock.sendall(resp_command("PING"))
            reply = _recv_line(sock, deadline)
        latency = (time.monotonic() - start) * 1000
        if reply == "+PONG":
            return True, f"PONG in {latency:.0f} ms", {}
        if reply.startswith("-"):
            return False, reply[1:], {}
        return False, f"unexpected reply {show(reply)}", {}
