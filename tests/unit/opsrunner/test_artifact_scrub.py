"""Artifacts are scrubbed structurally: JSON stays JSON, and a secret holding a quote or a backslash (escaped
in JSON, so a text match misses it) is masked."""

from __future__ import annotations

import json
from pathlib import Path

from opsrunner.redact import Redactor
from opsrunner.runner import scrub_file

SECRET = "pa\"ss\\wo'rd-1"


def test_a_json_artifact_is_masked_structurally(tmp_path: Path) -> None:
    event = {"event_data": {"res": {"msg": f"login with {SECRET}", "out": "password=hunter2 done"}}}
    path = tmp_path / "1-event.json"
    path.write_text(json.dumps(event))
    scrub_file(path, Redactor([SECRET]))
    text = path.read_text()
    assert SECRET not in json.loads(text)["event_data"]["res"]["msg"]
    assert "hunter2" not in text and 'pa\\"ss' not in text
    assert json.loads(text)["event_data"]["res"] == {
        "msg": "login with ********",
        "out": "password=<secret> done",
    }
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_partial_json_artifact_is_masked_as_text(tmp_path: Path) -> None:
    path = tmp_path / "2-partial.json"
    path.write_text('{"stdout": "Authorization: Bearer 0123456789abcdef", "cut')
    scrub_file(path, Redactor())
    assert "0123456789abcdef" not in path.read_text()


def test_an_artifact_without_secrets_is_left_as_written(tmp_path: Path) -> None:
    path = tmp_path / "3-event.json"
    path.write_text('{"b": 1,   "a": "ok"}')
    mode = path.stat().st_mode
    scrub_file(path, Redactor(["hunter2"]))
    assert path.read_text() == '{"b": 1,   "a": "ok"}' and path.stat().st_mode == mode
