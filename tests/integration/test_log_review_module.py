"""aitbc.ops.log_review through real ansible-playbook (local connection, /usr/bin/python3 on the "host") on
log files in tmp_path: the first review counts everything, the second only what was appended, --check leaves
the cursors alone; the catalogue playbook playbooks/logs_review.yml; ansible-doc."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(REPO / ".venv" / "bin" / "ansible-playbook")
ANSIBLE_DOC = str(REPO / ".venv" / "bin" / "ansible-doc")
# With -v the default stdout callback prints each result as one JSON line: "changed: [localhost] => {...}".
RESULT_LINE = re.compile(r"^(?:ok|changed): \[(?P<host>[^\]]+)\] => (?P<json>\{.*\})$", re.MULTILINE)
LOCAL = ["-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=/usr/bin/python3"]


def ansible_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        # An empty value crashes ansible-core 2.19; naming a stdout callback keeps the memory callback out.
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.minimal",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / ".ansible-tmp"),
    }


def run_playbook(tmp_path: Path, playbook: Path, *args: str) -> dict[str, dict]:
    """Run a one-task playbook with -v; the task's result per host."""
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, str(playbook), "-v", *args],
        cwd=tmp_path,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {m["host"]: json.loads(m["json"]) for m in RESULT_LINE.finditer(proc.stdout)}


def write(path: Path, *lines: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


@pytest.fixture
def review_playbook(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    playbook = tmp_path / "review.yml"
    playbook.write_text(
        f"""---
- name: Review test logs
  hosts: all
  gather_facts: false
  tasks:
    - name: Review the logs
      aitbc.ops.log_review:
        cursor_dir: {tmp_path}/cursors
        sources:
          - service: api
            path: {logs}/api.log
          - service: node
            path: {logs}/node.log
          - service: gone
            path: {logs}/gone.log
"""
    )
    return playbook


def by_service(result: dict) -> dict[str, dict]:
    return {r["service"]: r for r in result["reviews"]}


def test_reviews_count_only_new_lines_and_check_mode_keeps_cursors(
    tmp_path: Path, review_playbook: Path
) -> None:
    logs = tmp_path / "logs"
    write(
        logs / "api.log",
        "2025-05-01 10:00:00 INFO started",
        "2025-05-01 10:00:01 ERROR payment id=41 failed: 'timeout'",
        "2025-05-01 10:00:02 WARNING slow request 812 ms",
        "2025-05-01 10:00:03 ERROR payment id=42 failed: 'reset'",
    )
    write(logs / "node.log", "INFO block 1", "INFO block 2")

    first = run_playbook(tmp_path, review_playbook, *LOCAL)["localhost"]
    assert first["changed"] is True
    api, node, gone = by_service(first)["api"], by_service(first)["node"], by_service(first)["gone"]
    assert (api["new_lines"], api["errors"], api["warnings"]) == (4, 2, 1)
    [sig] = api["signatures"]
    assert sig["template"] == "ERROR payment id=<id> failed: '<str>'" and sig["count"] == 2
    assert (node["new_lines"], node["errors"]) == (2, 0)
    assert gone["error"] == f"log file not found: {logs / 'gone.log'}"
    cursors = {p.name: p.read_bytes() for p in (tmp_path / "cursors").iterdir()}
    assert len(cursors) == 2

    write(logs / "api.log", "2025-05-01 11:00:00 ERROR payment id=43 failed: 'x'", "INFO ok")
    checked = run_playbook(tmp_path, review_playbook, *LOCAL, "--check")["localhost"]
    assert checked["changed"] is True  # cursors would move
    assert by_service(checked)["api"]["new_lines"] == 2 and by_service(checked)["node"]["new_lines"] == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "cursors").iterdir()} == cursors

    second = run_playbook(tmp_path, review_playbook, *LOCAL)["localhost"]
    api = by_service(second)["api"]
    assert (api["new_lines"], api["errors"], api["warnings"]) == (2, 1, 0)
    assert api["signatures"][0]["id"] == sig["id"]  # same signature as in the first review
    assert by_service(second)["node"]["new_lines"] == 0

    third = run_playbook(tmp_path, review_playbook, *LOCAL)["localhost"]
    assert third["changed"] is False and third["totals"] == {"new_lines": 0, "errors": 0, "warnings": 0}


def test_catalogue_playbook_reviews_every_service_log(tmp_path: Path) -> None:
    root = tmp_path / "aitbc"
    (root / "log").mkdir(parents=True)
    write(root / "log" / "coordinator-api.log", "ERROR db locked", "WARNING retrying")
    write(root / "log" / "redis.log", "1:M 01 Jan 2025 12:00:00.123 # WARNING overcommit_memory is set to 0")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  children:\n    aitbc:\n      hosts:\n        localhost:\n"
        f"          ansible_connection: local\n          aitbc_root: {root}\n"
    )
    catalogue = REPO / "inventory" / "group_vars" / "all" / "aitbc.yml"
    output = run_playbook(
        tmp_path,
        REPO / "playbooks" / "logs_review.yml",
        "-i",
        str(inventory),
        "-e",
        f"@{catalogue}",
        "-e",
        "ansible_python_interpreter=/usr/bin/python3",
    )
    result = output["localhost"]
    reviews = by_service(result)
    assert [r["service"] for r in result["reviews"]] == [
        "redis",
        "coordinator-api",
        "blockchain-node",
        "blockchain-rpc",
        "wallet-daemon",
    ]
    assert (reviews["coordinator-api"]["errors"], reviews["coordinator-api"]["warnings"]) == (1, 1)
    assert reviews["redis"]["warnings"] == 1
    assert reviews["wallet-daemon"]["error"].startswith("log file not found")
    assert len(list((root / "log-cursors").iterdir())) == 2


def test_ansible_doc_renders_the_module(tmp_path: Path) -> None:
    proc = subprocess.run(
        [ANSIBLE_DOC, "aitbc.ops.log_review"],
        cwd=tmp_path,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "cursor_dir" in proc.stdout and "signature_examples" in proc.stdout


# nginx's own error log format, as nginx 1.22 (Debian) writes it.
NGINX_ERROR_LOG = [
    '2026/12/04 10:00:00 [notice] 811#811: using the "epoll" event method',
    "2026/12/04 10:00:01 [error] 812#812: *1 connect() failed (111: Connection refused) while connecting to "
    'upstream, client: 127.0.0.1, server: _, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:9/"',
    "2026/12/04 10:00:02 [error] 812#812: *3 connect() failed (111: Connection refused) while connecting to "
    'upstream, client: 127.0.0.1, server: _, request: "GET /x HTTP/1.1", upstream: "http://127.0.0.1:9/x"',
    "2026/12/04 10:00:03 [warn] 812#812: *5 an upstream response is buffered to a temporary file",
    '2026/12/04 10:00:04 [crit] 812#812: *7 open() "/srv/www/index.html" failed (13: Permission denied)',
    "2026/12/04 10:00:05 [emerg] 811#811: bind() to 0.0.0.0:80 failed (98: Address already in use)",
    "2026/12/04 10:00:06 [info] 812#812: *9 client closed keepalive connection",
    "2026/12/04 10:00:07 [notice] 811#811: upstream is slow to answer",  # the service's own pattern
]


def test_nginx_error_log_lines_are_counted_with_the_services_own_patterns(tmp_path: Path, opsrunner) -> None:
    root = tmp_path / "site"
    (root / "log").mkdir(parents=True)
    write(root / "log" / "nginx-error.log", *NGINX_ERROR_LOG)
    # A user's own one-file inventory: its catalogue, nothing of AITBC.
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "children": {
                        "aitbc": {
                            "hosts": {
                                "localhost": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": "/usr/bin/python3",
                                    "aitbc_root": str(root),
                                }
                            }
                        }
                    },
                    "vars": {
                        "aitbc_services": {
                            "nginx": {
                                "backend": "systemd",
                                "unit": "nginx.service",
                                "log_file": str(root / "log" / "nginx-error.log"),
                                "log_patterns": {"warning": ["upstream is slow"]},
                            }
                        },
                        "aitbc_catalogue": "{{ aitbc_services }}",
                        "aitbc_service_order": ["nginx"],
                    },
                }
            }
        )
    )
    done = opsrunner("logs", "review", "-i", str(inventory), "--json")
    assert done.rc == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [entry] = [r for r in (root / "log-cursors").iterdir()]
    assert entry.name.startswith("file-nginx-error.log-")
    # The module's own result, through ansible-playbook with the same catalogue.
    result = run_playbook(tmp_path, REPO / "playbooks" / "logs_review.yml", "-i", str(inventory))["localhost"]
    [nginx] = result["reviews"]
    assert nginx["new_lines"] == 0  # the opsrunner run moved the cursor past every line
    for cursor in (root / "log-cursors").iterdir():
        cursor.unlink()
    result = run_playbook(tmp_path, REPO / "playbooks" / "logs_review.yml", "-i", str(inventory))["localhost"]
    [nginx] = result["reviews"]
    assert (nginx["new_lines"], nginx["errors"], nginx["warnings"]) == (8, 4, 2), nginx
    templates = {s["template"]: s["count"] for s in nginx["signatures"]}
    assert sum(templates.values()) == 4 and max(templates.values()) == 2, templates
    assert any("[error]" in t and "connect() failed" in t for t in templates), templates
