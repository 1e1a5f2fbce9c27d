"""Serving the intake on uvicorn: in the foreground for `opsrunner intake serve` (uvicorn's SIGTERM/SIGINT
handling stops it gracefully), or in a thread for tests and benchmarks."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

STARTUP_TIMEOUT_S = 30.0


def uvicorn_config(app: ASGIApp, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        access_log=False,  # the app logs refusals; a line per accepted alert would flood the journal
        server_header=False,
        proxy_headers=False,
    )


def serve(app: ASGIApp, host: str, port: int, log_level: str = "info") -> bool:
    """Run until SIGTERM/SIGINT. False when the server could not start (port taken, startup failed)."""
    server = uvicorn.Server(uvicorn_config(app, host, port, log_level))
    server.run()
    return server.started


class ServerThread:
    """uvicorn on 127.0.0.1 (a port of its own) in a thread: `with ServerThread(app) as s: s.url`."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", log_level: str = "warning") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(app, host, self.port, log_level))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the intake server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(STARTUP_TIMEOUT_S)
        self.sock.close()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
