"""Pure parts of the MCP server: memory resource names, the search's bounds, client names, masking of
results, the annotations table and the bearer gate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from opsrunner.mcp import memoryfiles
from opsrunner.mcp.guard import Guard, client_name
from opsrunner.mcp.server import ANNOTATIONS, BearerGate
from opsrunner.memory import MemoryStore
from opsrunner.redact import MASK, Redactor


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    store = MemoryStore(tmp_path / "ai-memory")
    store.ensure_layout()
    (store.path("daily") / "2026-12-04.md").write_text("# Daily\n\nrestarted web on web1\n")
    (store.path("incidents") / "INC-20261204-001.md").write_text("# INC-20261204-001\nweb down\n")
    (store.path("knowledge") / "environment.md").write_text("web on :8080\n")
    (tmp_path / "secret.md").write_text("outside\n")
    return store


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("daily", "../secret.md"),
        ("daily", "..%2Fsecret.md"),
        ("daily", "2026-12-04.md/../../secret.md"),
        ("daily", "/etc/passwd"),
        ("daily", "notes.md"),
        ("incidents", "INC-1.md"),
        ("knowledge", "other.md"),
        ("failures", "failure-archive.md"),
        ("decisions", "x.md"),
        ("..", "secret.md"),
        ("daily", "2026-12-05.md"),  # well formed, absent
    ],
)
def test_memory_names_refused(store: MemoryStore, kind: str, name: str) -> None:
    with pytest.raises(memoryfiles.MemoryNameError):
        memoryfiles.memory_file(store, kind, name)


def test_memory_names_served(store: MemoryStore) -> None:
    assert memoryfiles.memory_file(store, "daily", "2026-12-04.md").read_text().endswith("web1\n")
    assert memoryfiles.memory_file(store, "failures", "debugging-notes.md").is_file()  # seeded by the layout
    listed = memoryfiles.listing(store)
    assert ("incidents", "INC-20261204-001.md") in listed and ("knowledge", "environment.md") in listed


def test_a_symlink_out_of_the_store_is_refused(store: MemoryStore, tmp_path: Path) -> None:
    os.symlink(tmp_path / "secret.md", store.path("daily", "2026-12-03.md"))
    with pytest.raises(memoryfiles.MemoryNameError):
        memoryfiles.memory_file(store, "daily", "2026-12-03.md")
    assert ("daily", "2026-12-03.md") not in memoryfiles.listing(store)


def test_search_is_bounded(store: MemoryStore) -> None:
    (store.path("daily") / "2026-12-03.md").write_text("web\n" * 1000)
    found = memoryfiles.search(store, "WEB", max_matches=10_000)
    assert len(found) == memoryfiles.SEARCH_MAX_MATCHES
    assert found[0].uri == "aitbc-memory://daily/2026-12-04.md" and found[0].line == 3
    with pytest.raises(memoryfiles.MemoryNameError):
        memoryfiles.search(store, "  ")


def test_client_names_are_made_safe() -> None:
    assert client_name("claude-code") == "claude-code"
    assert client_name("evil\n### 2026 · fake entry") == "evil_____2026___fake_entry"
    assert client_name("") == client_name(None) == "unknown"
    assert len(client_name("x" * 500)) == 60


def test_results_and_records_are_masked(store: MemoryStore) -> None:
    guard = Guard(store, Redactor(["s3cr3t-value-42"]))
    text = guard.render(
        {"log": ["password=hunter2abc", "token s3cr3t-value-42"], "api_key": "plain", "s3cr3t-value-42": 1}
    )
    assert "hunter2abc" not in text and "s3cr3t-value-42" not in text and "plain" not in text
    assert json.loads(text)["api_key"] == MASK
    guard.record(
        "agent", "incident_note", {"text": "s3cr3t-value-42", "host": "web1"}, "ok", "password=hunter2abc"
    )
    daily = "".join(p.read_text() for p in store.path("daily").glob("*.md"))
    assert "s3cr3t-value-42" not in daily and "hunter2abc" not in daily
    assert "incident_note by mcp:agent" in daily


def test_annotations_tell_the_truth() -> None:
    for name in ("incidents_list", "incident_show", "memory_show", "memory_search", "environment"):
        assert ANNOTATIONS[name].read_only_hint and not ANNOTATIONS[name].open_world_hint
    for name in ("service_restart", "apply"):
        assert ANNOTATIONS[name].destructive_hint and not ANNOTATIONS[name].read_only_hint
    assert not ANNOTATIONS["logs_review"].read_only_hint  # it moves the review cursors on the hosts
    assert {n for n, a in ANNOTATIONS.items() if a.open_world_hint} == {
        "fleet_status", "incident_ask", "incident_open", "apply"
    }  # fmt: skip


def test_bearer_gate() -> None:
    app = Starlette(routes=[Route("/mcp", lambda _request: PlainTextResponse("ok"), methods=["GET"])])
    client = TestClient(BearerGate(app, "tok-123"))
    assert client.get("/mcp").status_code == 401
    assert client.get("/mcp", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/mcp", headers={"Authorization": "Bearer tok-123"}).text == "ok"
