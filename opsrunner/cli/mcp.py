"""`opsrunner mcp`: the MCP server (opsrunner.mcp) over stdio (default) or streamable HTTP.

HTTP needs a bearer token from a file readable by its owner only (--token-file, mode 0600): without one it
does not start (exit 2). It listens on loopback unless told otherwise."""

from __future__ import annotations

import logging
import sys

import click

from ..settings import BadInput
from . import options
from .context import Context, pass_ctx
from .intake import is_loopback, parse_listen

DEFAULT_LISTEN = "127.0.0.1:9096"


@click.command("mcp")
@click.option(
    "--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True,
    help="stdio for a client that starts this process; http: streamable HTTP at /mcp.",
)  # fmt: skip
@click.option(
    "--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT", help="HTTP: where to listen."
)
@click.option("--token-file", metavar="FILE", help="HTTP: the bearer token's file (mode 0600). Required.")
@options.inventory()
@pass_ctx
def mcp(ctx: Context, transport: str, listen: str, token_file: str | None, inventory: str | None) -> None:
    """Serve the operations as MCP tools (status, incidents, memory, backups, releases, diagnose, logs,
    restarts within the budget, plans/approve/apply under the policy) and the ai-memory files as resources.
    Every call is masked and written to the daily memory with the client's name."""
    from ..mcp.server import build_server, serve_http
    from ..secret_files import read_secret_file

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)
    token = ""
    if transport == "http":
        host, port = parse_listen(listen)
        if not token_file:
            raise BadInput("the HTTP transport needs --token-file FILE (a bearer token, mode 0600)")
        token = read_secret_file(token_file, "--token-file")
        if not is_loopback(host):
            click.echo(f"opsrunner: warning: serving MCP on {host}, not a loopback address", err=True)
    server = build_server(ctx.settings, ctx.inventory_path(inventory), extra_secrets=(token,))
    if transport == "stdio":
        server.run("stdio")
        return
    click.echo(f"opsrunner mcp: serving streamable HTTP on http://{listen}/mcp", err=True)
    if not serve_http(server, token, host, port):
        raise click.exceptions.Exit(1)
