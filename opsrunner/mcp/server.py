"""The MCP server: tools with truthful annotations, the ai-memory files as resources, stdio or streamable
HTTP (bearer token) transports. Every call: its result masked, one daily-memory entry (event "mcp") with
the client's name (clientInfo.name of its initialize request), the tool and the outcome.

Annotations, and what "environment" means here: the hosts, their services and data, and the state of
incidents and plans. Records the project always keeps (the daily memory, diagnostics bundles, the
heartbeat's counters) are observation, not change. openWorldHint is true only where a call may reach
people outside (pages, tickets, announcements).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import ToolAnnotations

from .. import diagnose as bundles
from ..settings import BadInput, Settings
from . import memoryfiles
from .changes import ChangeDesk, service_restart
from .guard import Guard, Refused, client_name, seeded_redactor
from .ops import Ops

log = logging.getLogger("opsrunner.mcp")

SERVER_NAME = "aitbc-ops"


def hints(read_only: bool, destructive: bool, idempotent: bool, open_world: bool = False) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )


READ = hints(read_only=True, destructive=False, idempotent=True)
# The tool annotations, in one table (the README's table says the same).
ANNOTATIONS: dict[str, ToolAnnotations] = {
    "fleet_status": hints(True, False, True, open_world=True),  # probes the hosts; records nothing
    "incidents_list": READ,
    "incident_show": READ,
    "memory_show": READ,
    "memory_search": READ,
    "backups_list": READ,
    "releases": READ,
    "diagnose": READ,
    "environment": READ,
    "logs_review": hints(False, False, False),  # moves the review cursors on the hosts
    "incident_ack": hints(False, False, True),
    "incident_note": hints(False, False, False),
    "incident_ask": hints(False, False, False, open_world=True),  # pages a person
    "incident_answer": hints(False, False, False),
    "incident_open": hints(False, False, False, open_world=True),  # pages by the paging policy
    "service_restart": hints(False, True, False),
    "plan": hints(False, False, False),  # a check-mode run: nothing on the hosts changes; a plan is kept
    "approve": hints(False, False, True),
    "apply": hints(False, True, False, open_world=True),  # announcements; a failed deploy pages
}


@dataclass
class Tools:
    """Runs one tool call: the client's name, the work, the masked result, the daily-memory record."""

    ops: Ops
    guard: Guard

    def call(self, ctx: Context, tool: str, args: dict[str, Any], work: Callable[[str], Any]) -> str:
        client = client_of(ctx)
        try:
            result = work(f"mcp:{client}")
        except (BadInput, memoryfiles.MemoryNameError) as exc:
            self._record(client, tool, args, "error", str(exc))
            raise ToolError(self.guard.mask(str(exc))) from None
        except Exception as exc:
            log.exception("tool %s failed", tool)
            self._record(client, tool, args, "error", f"{type(exc).__name__}: {exc}")
            raise ToolError(self.guard.mask(f"{tool} failed: {type(exc).__name__}: {exc}")) from None
        if isinstance(result, Refused):
            outcome = "approval required" if result.message.startswith("approval required") else "refused"
            self._record(client, tool, args, outcome, result.message)
            return self.guard.render({"result": outcome, "message": result.message, **result.data})
        self._record(client, tool, args, "ok", _brief(result))
        return self.guard.mask(result) if isinstance(result, str) else self.guard.render(result)

    def _record(self, client: str, tool: str, args: dict[str, Any], outcome: str, summary: str) -> None:
        try:
            self.guard.record(client, tool, args, outcome, summary)
        except Exception:  # noqa: BLE001 - a full disk must not turn the answer into a crash
            log.exception("could not record the call of %s", tool)


def _brief(result: Any) -> str:
    if isinstance(result, dict):
        keys = ("outcome", "run_id", "plan", "id", "status", "kind")
        return ", ".join(f"{k}={result[k]}" for k in keys if isinstance(result.get(k), str | int))
    if isinstance(result, list):
        return f"{len(result)} item(s)"
    return f"{len(str(result))} characters"


def client_of(ctx: Context) -> str:
    try:
        params = ctx.request_context.session.client_params
    except (ValueError, AttributeError):
        return client_name(None)
    return client_name(params.client_info.name if params is not None else None)


def build_server(settings: Settings, inventory: Path, extra_secrets: tuple[str, ...] = ()) -> MCPServer:
    """The server for one inventory and memory store (the inventory's secrets are read once, here)."""
    ops = Ops(settings, inventory)
    redactor, problem = seeded_redactor(settings, inventory, extra_secrets)
    if problem:
        raise BadInput(f"{problem}: refusing to serve what cannot be masked")
    tools = Tools(ops, Guard(ops.store, redactor))
    desk = ChangeDesk(ops)
    mask = tools.guard.mask  # text an agent sends is data from the network: masked before it is kept
    server: MCPServer = MCPServer(
        SERVER_NAME,
        instructions=(
            "Operate the AITBC stack (or any inventory of services). Read tools observe; write tools obey "
            "the change policy (ops-policy.yml) and the heartbeat's restart budget. Every call is recorded."
        ),
        log_level="WARNING",
    )

    def tool(name: str, description: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
        return server.tool(
            name=name, description=description, annotations=ANNOTATIONS[name], structured_output=False
        )

    # -- read tools --------------------------------------------------------------------------------------

    @tool("fleet_status", "Check every host and service now (the heartbeat's checks, as a look only): "
          "checks per host and service, healthy or not. Restarts nothing, opens or resolves no incident, "
          "pages no one and does not count as a heartbeat.")  # fmt: skip
    def fleet_status(ctx: Context, limit: str = "") -> str:
        return tools.call(ctx, "fleet_status", {"limit": limit}, lambda by: ops.fleet_status(limit or None))

    @tool("incidents_list", "Incident records, oldest first; status: open, acknowledged, needs-guidance, "
          "resolved or active.")  # fmt: skip
    def incidents_list(ctx: Context, status: str = "") -> str:
        return tools.call(ctx, "incidents_list", {"status": status}, lambda by: ops.incidents_list(status))

    @tool("incident_show", "One incident record with its timeline, diagnostics and debugging notes.")
    def incident_show(ctx: Context, incident_id: str) -> str:
        args = {"incident_id": incident_id}
        return tools.call(ctx, "incident_show", args, lambda by: ops.incident_show(incident_id))

    @tool("memory_show", "The daily memory entries of one day (YYYY-MM-DD, default today UTC), the last N.")
    def memory_show(ctx: Context, day: str = "", last: int = 20) -> str:
        args = {"day": day, "last": last}
        return tools.call(ctx, "memory_show", args, lambda by: ops.memory_show(day, last))

    @tool("memory_search", "Lines of the ai-memory files (daily, incidents, environment, debugging notes) "
          "that hold TEXT, case-insensitive; bounded.")  # fmt: skip
    def memory_search(ctx: Context, query: str, max_matches: int = 50) -> str:
        args = {"query": query, "max_matches": max_matches}
        return tools.call(ctx, "memory_search", args, lambda by: ops.memory_search(query, max_matches))

    @tool("backups_list", "Every host's backup sets: path, age, size, verified.")
    def backups_list(ctx: Context, limit: str = "") -> str:
        return tools.call(ctx, "backups_list", {"limit": limit}, lambda by: ops.backups_list(limit or None))

    @tool("releases", "The current and previous release of each deployable service per host.")
    def releases(ctx: Context, limit: str = "") -> str:
        return tools.call(ctx, "releases", {"limit": limit}, lambda by: ops.releases(limit or None))

    @tool("diagnose", "An incident bundle of one host: load, memory, disks, sockets, and for SERVICE "
          "(default every service) its processes, last log lines and restarts. Kept in memory and "
          "attached to the host's incidents.")  # fmt: skip
    def diagnose(
        ctx: Context, host: str, service: str = "", log_lines: int = bundles.DEFAULT_LOG_LINES
    ) -> str:
        args = {"host": host, "service": service, "log_lines": log_lines}
        return tools.call(ctx, "diagnose", args, lambda by: ops.diagnose(host, service, log_lines))

    @tool("logs_review", "Count errors and warnings per service since the last review (moves each log's "
          "review cursor on the host); proposes new error signatures.")  # fmt: skip
    def logs_review(ctx: Context, limit: str = "") -> str:
        return tools.call(ctx, "logs_review", {"limit": limit}, lambda by: ops.logs_review(limit or None))

    @tool("environment", "knowledge/environment.md: hosts, services, ports, URLs, health checks, schedules.")
    def environment(ctx: Context) -> str:
        return tools.call(ctx, "environment", {}, lambda by: ops.environment())

    # -- incidents ---------------------------------------------------------------------------------------

    @tool("incident_ack", "Acknowledge an incident: you have it; reminders stop.")
    def incident_ack(ctx: Context, incident_id: str, note: str = "") -> str:
        args = {"incident_id": incident_id, "note": note}
        return tools.call(ctx, "incident_ack", args, lambda by: ops.incident_ack(incident_id, mask(note), by))

    @tool("incident_note", "Add a line to an incident's timeline.")
    def incident_note(ctx: Context, incident_id: str, text: str) -> str:
        args = {"incident_id": incident_id, "text": text}
        return tools.call(
            ctx, "incident_note", args, lambda by: ops.incident_note(incident_id, mask(text), by)
        )

    @tool("incident_ask", "Ask a person: the incident goes to needs-guidance (a person is paged) and its "
          "remediation pauses until answered.")  # fmt: skip
    def incident_ask(ctx: Context, incident_id: str, question: str) -> str:
        args = {"incident_id": incident_id, "question": question}
        return tools.call(
            ctx, "incident_ask", args, lambda by: ops.incident_ask(incident_id, mask(question), by)
        )

    @tool("incident_answer", "Answer the question of a needs-guidance incident; its remediation resumes.")
    def incident_answer(ctx: Context, incident_id: str, text: str) -> str:
        args = {"incident_id": incident_id, "text": text}
        return tools.call(
            ctx, "incident_answer", args, lambda by: ops.incident_answer(incident_id, mask(text), by)
        )

    @tool("incident_open", "Report a problem: opens the incident of HOST + SERVICE + CHECK, or joins the one "
          "open; pages as the inventory's paging policy says. severity: critical|warning|info; "
          "category: ops|security|code.")  # fmt: skip
    def incident_open(
        ctx: Context,
        host: str,
        service: str,
        summary: str,
        check: str = "reported",
        severity: str = "critical",
        category: str = "ops",
    ) -> str:
        args = {"host": host, "service": service, "check": check, "summary": summary,
                "severity": severity, "category": category}  # fmt: skip
        return tools.call(
            ctx,
            "incident_open",
            args,
            lambda by: ops.incident_open(host, service, check, mask(summary), severity, category, by),
        )

    # -- changes -----------------------------------------------------------------------------------------

    @tool("service_restart", "Restart SERVICE on HOST, within the heartbeat's restart budget (a restart the "
          "budget refuses changes nothing; one done here counts against it).")  # fmt: skip
    def restart(ctx: Context, host: str, service: str) -> str:
        args = {"host": host, "service": service}
        return tools.call(ctx, "service_restart", args, lambda by: service_restart(ops, host, service))

    @tool("plan", "Plan a change (deploy, rollback, restore, config, packages, service-stop ...) in "
          "check and diff mode: what would change per host. args: the command's arguments. Where the "
          "policy needs approval, the answer is the plan id and 'approval required'.")  # fmt: skip
    def plan(ctx: Context, action: str, args: dict[str, Any] | None = None, limit: str = "") -> str:
        given = {"action": action, "args": args or {}, "limit": limit}
        return tools.call(
            ctx, "plan", given, lambda by: desk.plan(action, dict(args or {}), limit or None, by)
        )

    @tool(
        "approve", "Approve a plan, as mcp:<your client name>: only where the policy names you an approver."
    )
    def approve(ctx: Context, plan_id: str, note: str = "") -> str:
        args = {"plan_id": plan_id, "note": note}
        return tools.call(ctx, "approve", args, lambda by: desk.approve(plan_id, note, by))

    @tool("apply", "Apply a plan: refused when unapproved where the policy needs approval, expired, or its "
          "inputs changed.")  # fmt: skip
    def apply(ctx: Context, plan_id: str) -> str:
        return tools.call(ctx, "apply", {"plan_id": plan_id}, lambda by: desk.apply(plan_id, by))

    add_memory_resources(server, tools)
    return server


def add_memory_resources(server: MCPServer, tools: Tools) -> None:
    """aitbc-memory://{kind}/{name}: daily/DATE.md, incidents/INC-....md, knowledge/environment.md,
    failures/debugging-notes.md; masked like tool results."""
    store = tools.ops.store

    @server.resource(
        f"{memoryfiles.SCHEME}://{{kind}}/{{name}}",
        name="ai-memory",
        description="The ai-memory files: daily/YYYY-MM-DD.md, incidents/INC-....md, "
        "knowledge/environment.md, failures/debugging-notes.md.",
        mime_type="text/markdown",
    )
    def memory_file(kind: str, name: str) -> str:
        try:
            path = memoryfiles.memory_file(store, kind, name)
        except memoryfiles.MemoryNameError as exc:
            raise ResourceError(tools.guard.mask(str(exc))) from None
        return tools.guard.mask(path.read_text(errors="replace"))

    for kind, name in (("knowledge", "environment.md"), ("failures", "debugging-notes.md")):
        _fixed_resource(server, tools, kind, name)


def _fixed_resource(server: MCPServer, tools: Tools, kind: str, name: str) -> None:
    store = tools.ops.store

    @server.resource(memoryfiles.uri(kind, name), name=f"{kind}/{name}", mime_type="text/markdown")
    def fixed() -> str:
        try:
            return tools.guard.mask(memoryfiles.memory_file(store, kind, name).read_text(errors="replace"))
        except memoryfiles.MemoryNameError as exc:
            raise ResourceError(str(exc)) from None


# -- the HTTP transport ----------------------------------------------------------------------------


class BearerGate:
    """Every HTTP request needs `Authorization: Bearer <token>` (else 401); lifespan events pass."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            presented = b""
            for key, value in scope.get("headers") or []:
                if key.lower() == b"authorization":
                    presented = value.strip()
            if not hmac.compare_digest(presented, self.expected):
                await _unauthorized(send)
                return
        await self.app(scope, receive, send)


async def _unauthorized(send: Send) -> None:
    body = json.dumps({"error": "a bearer token is needed (Authorization: Bearer ...)"}).encode()
    headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def http_app(server: MCPServer, token: str, host: str) -> ASGIApp:
    """Streamable HTTP at /mcp behind the bearer token."""
    if not token:
        raise BadInput("the HTTP transport needs a token")
    return BearerGate(server.streamable_http_app(host=host), token)


def serve_http(server: MCPServer, token: str, host: str, port: int) -> bool:
    """Run until SIGTERM/SIGINT; False when it could not start."""
    import uvicorn

    config = uvicorn.Config(
        http_app(server, token, host), host=host, port=port, log_level="warning", lifespan="on",
        server_header=False, proxy_headers=False,
    )  # fmt: skip
    runner = uvicorn.Server(config)
    runner.run()
    return runner.started
