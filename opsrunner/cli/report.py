"""`opsrunner report`: the static HTML status page (built by opsrunner/statuspage.py)."""

from __future__ import annotations

import json
import sys

import click

from .. import statuspage
from . import options
from .context import Context, pass_ctx, playbook_request


@click.command("report")
@options.inventory()
@options.limit("Limit the live facts to hosts matching PATTERN.")
@click.option(
    "--out",
    default=statuspage.DEFAULT_OUT,
    show_default=True,
    metavar="DIR",
    help="Folder for index.html (and incidents/).",
)
@click.option(
    "--heartbeats",
    type=click.IntRange(1, 4000),
    default=statuspage.DEFAULT_HEARTBEATS,
    show_default=True,
    help="Heartbeats shown in the uptime timeline.",
)
@options.json("Print a machine-readable summary.")
@pass_ctx
def report(
    ctx: Context, inventory: str | None, limit: str | None, out: str, heartbeats: int, as_json: bool
) -> None:
    """Write a static HTML status page (DIR/index.html, no external resources, opens offline): the
    latest heartbeat per host and service, uptime over the last heartbeats, open and recent incidents,
    backup freshness and the current releases. Exit 0 when written, 3 when every host was unreachable."""
    target = statuspage.output_dir(out)
    request = playbook_request(ctx, "report.yml", inventory=inventory, limit=limit)
    record, facts = statuspage.gather(ctx.runner(), request)
    page = statuspage.build_page(ctx.store, record, facts, heartbeats)
    index = statuspage.write_site(target, page, ctx.store)
    code = statuspage.exit_code(record, page.unreachable)
    if as_json:
        click.echo(json.dumps(statuspage.summary(page, index, code), indent=2, sort_keys=True))
    else:
        click.echo(statuspage.summary_line(page, index, code))
    sys.exit(code)
