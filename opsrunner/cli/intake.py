"""`opsrunner intake serve`: the HTTP receiver of Alertmanager webhooks and agents' events (opsrunner.intake).

Every check that can fail is done before the server starts, each a one-line error with exit 2: the listen
address, the secret files (owner-only, mode 0600), at least one kind of authentication, the numbers.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import sys

import click

from ..settings import BadInput
from . import options
from .context import Context, pass_ctx

DEFAULT_LISTEN = "127.0.0.1:9095"
HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")  # a name or an IPv4 address; IPv6 in brackets


def parse_listen(text: str) -> tuple[str, int]:
    """host:port, [v6]:port -> (host, port). Raises BadInput."""
    host, sep, port = text.rpartition(":")
    usage = f"--listen {text}: use HOST:PORT (e.g. {DEFAULT_LISTEN}, [::1]:9095)"
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(usage)
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1])), int(port)
        except ValueError:
            raise BadInput(f"--listen {text}: {host} is not an IPv6 address") from None
    if not HOST_RE.match(host):
        raise BadInput(usage)
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def positive(value: float, name: str) -> None:
    if value <= 0:
        raise BadInput(f"{name} must be greater than 0 (got {value:g})")


@click.group()
def intake() -> None:
    """The receiver of alerts (Alertmanager webhooks) and agents' reports."""


@intake.command("serve")
@click.option(
    "--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT", help="Address to listen on."
)
@click.option(
    "--token-file",
    metavar="FILE",
    help="Bearer token file (mode 0600): writes may send 'Authorization: Bearer'.",
)
@click.option(
    "--signing-secret-file",
    metavar="FILE",
    help="Standard Webhooks secret file (whsec_<base64>, mode 0600): writes may be signed.",
)
@click.option(
    "--queue-size", type=int, default=1000, show_default=True, help="Reports waiting for work; more: 429."
)
@click.option(
    "--body-limit", type=int, default=1048576, show_default=True, metavar="BYTES", help="Larger bodies: 413."
)
@click.option(
    "--heartbeat-interval",
    type=float,
    default=1800.0,
    show_default=True,
    metavar="S",
    help="The heartbeat's interval: no heartbeat finished for 2 of them pages (dead-man's switch).",
)
@options.inventory()
@pass_ctx
def serve(
    ctx: Context,
    listen: str,
    token_file: str | None,
    signing_secret_file: str | None,
    queue_size: int,
    body_limit: int,
    heartbeat_interval: float,
    inventory: str | None,
) -> None:
    """Receive POST /alerts (Alertmanager v4) and POST /events (agents), authenticated; GET /health, /metrics.
    Answers 202 at once; each report goes to the incident work in the background. Stops on SIGTERM/SIGINT."""
    from ..intake.app import IntakeConfig, create_app
    from ..intake.server import serve as run_server
    from ..secret_files import read_secret_file

    host, port = parse_listen(listen)
    positive(queue_size, "--queue-size")
    positive(body_limit, "--body-limit")
    positive(heartbeat_interval, "--heartbeat-interval")
    token = read_secret_file(token_file, "--token-file") if token_file else None
    secret = read_secret_file(signing_secret_file, "--signing-secret-file") if signing_secret_file else None
    if not token and not secret:
        where = "" if is_loopback(host) else f" (and {host} is not a loopback address)"
        raise BadInput(
            f"the intake needs authentication{where}: give --token-file and/or --signing-secret-file"
        )
    config = IntakeConfig(
        memory_dir=ctx.settings.memory_dir,
        token=token,
        signing_secret=secret,
        queue_size=queue_size,
        body_limit=body_limit,
        heartbeat_interval=heartbeat_interval,
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s", stream=sys.stderr)
    from ..intake.assess import build_handler

    app = create_app(config, build_handler(ctx, inventory))
    if not run_server(app, host, port):
        raise click.exceptions.Exit(1)
