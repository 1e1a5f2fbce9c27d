"""The MCP server (`opsrunner mcp`) driven by the SDK's own client: over stdio as a subprocess against a
one-file inventory of this machine (a deployable web service, tests/faults/faultlib.py), and over
streamable HTTP with and without its token.

One story over stdio: list the tools (annotations), read the fleet's status, restart the service (a new
pid) until the restart budget refuses, plan a deploy the policy guards (approval required, nothing
changed), approve it from the CLI, apply it through MCP (the new release serves). Planted secrets (an
environment variable's value, a password= line in the service's log) appear in no tool result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import yaml
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from faultlib import BIN, REPO, Site, http_get, opsrunner, wait_for, web_site  # noqa: E402
from ports import free_port  # noqa: E402

pytestmark = pytest.mark.integration

CLIENT = "itest-agent"
PLANTED_ENV = "ghp_PlantedPatValue8c1f2e9d"
PLANTED_PASSWORD = "Hunter2PlantedPw77"
DEMO = REPO / "demo" / "aitbc_demo.py"


def release(folder: Path, version: str) -> Path:
    out = folder / f"web-{version}.tar.gz"
    argv = [sys.executable, str(DEMO), "release", "--version", version, "--out", str(out)]
    subprocess.run(argv, check=True, capture_output=True)
    return out


def deployable_site(tmp_path: Path) -> Site:
    """One host running the demo coordinator from app_root/current; restart budget: 2 per 6 heartbeats."""
    app = "{{ aitbc_root }}/apps/web"
    command = f"{sys.executable} {app}/current/aitbc_demo.py coordinator --port {{{{ web_port }}}} " \
        "--db {{ aitbc_root }}/data/jobs.db"  # fmt: skip
    gate = [{"type": "http", "path": "/health", "json": ["status == ok"]}]
    site = web_site(
        tmp_path,
        ["web1"],
        extra={"deploy_gate_timeout": 5, "heartbeat_max_restarts": 2},
        command=command,
        service={"app_root": app, "probes": gate, "databases": ["{{ aitbc_root }}/data/jobs.db"]},
    )
    (tmp_path / "web1" / "data").mkdir()
    import sqlite3

    sqlite3.connect(tmp_path / "web1" / "data" / "jobs.db").close()
    return site


def served_version(site: Site) -> str:
    status, body = http_get(f"http://127.0.0.1:{site.ports['web1']}/health")
    return json.loads(body).get("version", "") if status == 200 else f"HTTP {status}"


def current_release(site: Site) -> str:
    return str((site.root / "web1" / "apps" / "web" / "current").readlink())


def server_env(site: Site) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "OPSRUNNER_MEMORY_DIR": str(site.memory),
        "OPSRUNNER_WORK_DIR": str(site.root / ".work"),
        "GITHUB_PAT": PLANTED_ENV,
    }


def status_of(url: str) -> int:
    """The HTTP status of a GET, 0 while nothing listens."""
    try:
        return http_get(url)[0]
    except OSError:
        return 0


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


class Calls:
    """A session's tool calls, every result's text kept for the secret check at the end."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session
        self.texts: list[str] = []

    async def __call__(self, tool: str, **args: Any) -> tuple[bool, str]:
        result = await self.session.call_tool(tool, args, read_timeout_seconds=600)
        text = text_of(result)
        self.texts.append(text)
        return bool(result.is_error), text


@pytest.fixture
def site(tmp_path: Path):
    site = deployable_site(tmp_path)
    first = site.run("deploy", "1", "--from", str(release(tmp_path, "1")), "--service", "web", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    # Planted secrets: a password line and a token (only the environment knows it is one) in the log.
    with (tmp_path / "web1" / "log" / "web.log").open("a") as log:
        log.write(f"ERROR db login failed: password={PLANTED_PASSWORD}\n")
        log.write(f"ERROR upstream rejected credential {PLANTED_ENV}\n")
    # The policy beside the inventory: a deploy needs a plan approved by alice.
    (tmp_path / "ops-policy.yml").write_text(
        yaml.safe_dump({"require_plan": ["deploy"], "approvers": ["alice"]})
    )
    yield site
    site.stop_all()


def test_stdio_story(site: Site, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=str(BIN / "opsrunner"),
        args=["--memory-dir", str(site.memory), "mcp", "-i", str(site.inventory)],
        env=server_env(site),
        cwd=str(tmp_path),
    )
    good = release(tmp_path, "2")

    async def story() -> None:
        async with (
            stdio_client(params) as (read, write),
            ClientSession(read, write, client_info=Implementation(name=CLIENT, version="1")) as session,
        ):
            await session.initialize()
            await check_story(session, site, tmp_path, good)

    anyio.run(story)


async def check_story(session: ClientSession, site: Site, tmp_path: Path, artifact: Path) -> None:
    call = Calls(session)
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert {"fleet_status", "service_restart", "plan", "approve", "apply", "memory_search"} <= set(tools)
    for name in ("incidents_list", "incident_show", "memory_show", "environment", "backups_list", "releases"):
        assert tools[name].annotations.read_only_hint is True, name
        assert tools[name].annotations.open_world_hint is False, name
    for name in ("service_restart", "apply"):
        assert tools[name].annotations.read_only_hint is False
        assert tools[name].annotations.destructive_hint is True, name
    assert tools["incident_ack"].annotations.idempotent_hint is True
    assert tools["incident_note"].annotations.idempotent_hint is False
    assert tools["incident_open"].annotations.open_world_hint is True

    # Status: every check passes.
    error, text = await call("fleet_status")
    assert not error, text
    status = json.loads(text)
    assert status["healthy"] is True, text
    assert {"host": "web1", "service": "web", "status": "ok", "detail": ""} in status["checks"]
    # A look only: not counted as a heartbeat, no history line (so nothing could open or page either).
    for name in ("incidents/.heartbeat-state.json", "incidents/.heartbeat-history.jsonl"):
        assert not (site.memory / name).exists(), name

    # A restart: a new pid; the budget (2) allows one more, then refuses and changes nothing.
    before = site.pid("web1")
    error, text = await call("service_restart", host="web1", service="web")
    assert not error, text
    assert wait_for(lambda: site.pid("web1") not in (None, before), 30), text
    error, text = await call("service_restart", host="web1", service="web")
    assert not error, text
    pid = site.pid("web1")
    error, text = await call("service_restart", host="web1", service="web")
    assert not error and "refused: restart budget spent (2 within 6 heartbeats)" in text, text
    assert site.pid("web1") == pid

    # The planted secrets are in what diagnose reads (the log's last lines), masked.
    error, text = await call("diagnose", host="web1", service="web")
    assert not error, text
    assert "password=" in text and "db login failed" in text
    error, text = await call("incident_open", host="web1", service="web", check="credential",
                             summary=f"upstream rejects {PLANTED_ENV}", severity="warning")  # fmt: skip
    assert not error, text
    incident = json.loads(text)["id"]
    error, text = await call("incident_ack", incident_id=incident, note="on it")
    assert not error and json.loads(text)["status"] == "acknowledged", text
    error, text = await call("memory_search", query="upstream")
    assert not error and json.loads(text), text

    # A deploy the policy guards: a plan, approval required, nothing changed.
    state = (current_release(site), site.pid("web1"), served_version(site))
    args = {"version": "2", "artifact": str(artifact), "service": "web"}
    error, text = await call("plan", action="deploy", args=args)
    assert not error, text
    answer = json.loads(text)
    assert answer["result"] == "approval required" and answer["plan"].startswith("PLAN-"), text
    plan_id = answer["plan"]
    error, text = await call("apply", plan_id=plan_id)
    assert not error and "approval required" in text, text
    error, text = await call("approve", plan_id=plan_id, note="me")
    assert not error and text.count("refused") and "not among the policy's approvers" in text, text
    assert (current_release(site), site.pid("web1"), served_version(site)) == state

    # A person approves from the CLI; the agent applies.
    approved = await anyio.to_thread.run_sync(
        lambda: opsrunner("--memory-dir", str(site.memory), "approve", plan_id, "--by", "alice", cwd=tmp_path)
    )
    assert approved.returncode == 0, approved.stdout + approved.stderr
    error, text = await call("apply", plan_id=plan_id)
    assert not error, text
    assert json.loads(text)["plan"]["status"] == "applied", text
    assert served_version(site) == "2"

    # The resources: a memory file by name; traversal refused.
    listed = await session.list_resource_templates()
    assert any(t.uri_template.startswith("aitbc-memory://") for t in listed.resource_templates)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    daily = await session.read_resource(f"aitbc-memory://daily/{day}.md")
    assert "mcp" in daily.contents[0].text
    call.texts.append(daily.contents[0].text)
    with pytest.raises(Exception, match="Unknown resource|not a daily file name"):  # the SDK's check, or ours
        await session.read_resource("aitbc-memory://daily/..%2F..%2Fhosts.yml")
    with pytest.raises(Exception, match="not a daily file name"):
        await session.read_resource("aitbc-memory://daily/hosts.yml")

    for text in call.texts:
        assert PLANTED_ENV not in text and PLANTED_PASSWORD not in text
    # Every call is in the daily memory, with the client's name.
    entries = [e for e in daily.contents[0].text.split("### ") if " · mcp · " in e]
    assert len(entries) >= 12 and all(f"mcp:{CLIENT}" in e for e in entries)
    assert any("refused" in e and "service_restart" in e for e in entries)


def test_http_needs_the_token(site: Site, tmp_path: Path) -> None:
    token_file = tmp_path / "mcp.token"
    token_file.write_text("itest-token-5d0c7a")
    token_file.chmod(0o600)
    port = free_port()
    listen = f"127.0.0.1:{port}"
    argv = [str(BIN / "opsrunner"), "--memory-dir", str(site.memory), "mcp", "--transport", "http",
            "--listen", listen, "--token-file", str(token_file), "-i", str(site.inventory)]  # fmt: skip
    # Without a token file it does not start.
    refused = opsrunner("mcp", "--transport", "http", "-i", str(site.inventory), cwd=tmp_path)
    assert refused.returncode == 2 and "--token-file" in refused.stderr
    server = subprocess.Popen(argv, cwd=tmp_path, env=server_env(site), stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        assert wait_for(lambda: status_of(url) == 401, 60), "the server did not come up"

        async def session_with(token: str | None) -> str:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            agent = Implementation(name="http-agent", version="1")
            async with (
                httpx2.AsyncClient(headers=headers, timeout=600) as client,
                streamable_http_client(url, http_client=client) as (read, write),
                ClientSession(read, write, client_info=agent) as session,
            ):
                await session.initialize()
                return text_of(await session.call_tool("incidents_list", {}))

        assert anyio.run(session_with, "itest-token-5d0c7a") == "[]"
        for wrong in (None, "not-the-token"):
            with pytest.raises(Exception):  # noqa: B017 - the client surfaces 401 as its own error type
                anyio.run(session_with, wrong)
        request = httpx2.post(url, json={}, headers={"Authorization": "Bearer nope"})
        assert request.status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
