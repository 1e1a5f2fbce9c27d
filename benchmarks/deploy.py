"""`opsrunner deploy` of 3 hosts, serial 1, split into phases, versus the same phases as bare ssh commands.

Setup: N real SSH test hosts (tests/integration/testhosts.py, default 3) running the demo stack
(`opsrunner demo up`); release tarballs built with `demo/aitbc_demo.py release` in a temporary folder.
The coordinator-api catalogue entry of each host (command, pidfile, log, env, migrate command, probes)
is resolved once through Ansible, so the bare commands use exactly the catalogue's values.

Every round (--repeat, default 3; the order of the two cases alternates) runs:

- opsrunner: `opsrunner deploy V --from TARBALL --serial 1 -i INV --json` with a new version each round
  (2, 3, 4, ...): wall time of the command, and controller CPU (this process's children). The run's
  job_events (artifact_dir in the --json output) give each task's duration per host, summed over the
  hosts into phases: backup = the aitbc.ops.backup role's tasks (set, verify with restore drill,
  prune, ...); unpack = artifact folder + copy + `aitbc.ops.release state=present`; migrate = "Run the
  migration"; switch = `aitbc.ops.release state=current`; restart and gate = the aitbc.ops.services
  task (aitbc.ops.service restarted with wait_healthy). That one task is split with the coordinator's
  own log (timestamped lines on the hosts' shared filesystem, same clock): restart = task start up to
  the first health probe the module sends to the new process; gate = from that probe to the task's end.
  Other tasks = everything else (request checks, the controller-side stat/checksum, release_info,
  include_role, decision record). Between tasks = the playbook's span minus all task durations
  (strategy, includes, one play start per batch). Start-up/finish = the command's wall time minus the
  playbook's span (opsrunner, ansible-runner and ansible-playbook start-up, recording the run).
- bare: the same work as plain commands over ssh, one host after the other: `sqlite3 .backup` of
  coordinator.db + `sha256sum` (backup); `mkdir`, `scp` of the tarball, `tar xzf` into a new release
  folder (unpack); the catalogue's migrate command (migrate); `ln -sfn` + `mv -T` (switch); kill the
  pidfile's process, wait for it to exit, start the catalogue command with setsid/nohup and write the
  pidfile (restart); a curl loop on the http probe paths until all answer 200 (gate). Each phase is
  timed by itself and summed; the sum is the baseline. ssh runs over one multiplexed connection per
  host (ControlMaster, opened before the timing), as Ansible's ControlPersist does; the cost of a fresh
  connection is measured and printed for reference. After each bare deploy the hosts are reset
  (untimed): `current` back to the recorded release, the bare release removed, the coordinator
  restarted from it, so the release state stays what the release module recorded.

The ratio opsrunner wall / bare sum is the whole price of running the deploy through opsrunner: Ansible's
per-task cost, opsrunner's recording, and the work the role does on top of the bare commands (a verified
backup set with a restore drill and retention, the artifact checksum, release bookkeeping with fsync,
the service module's 1 s liveness hold, the decision record). Per-phase ratios show where it goes.

The machine this was written on has 2 cores and other work running: the numbers are noisy, compare
them within one run only. Everything started here (demo stack, hosts, namespaces, ssh masters) is torn
down on exit, failure or Ctrl-C included.

Usage: python benchmarks/deploy.py [--repeat N] [--hosts N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import BIN, REPO, run_quiet

sys.path.insert(0, str(REPO / "tests" / "integration"))
from testhosts import HostPool, SshHost, create_hosts  # noqa: E402

SERVICE = "coordinator-api"
DEMO = REPO / "demo" / "aitbc_demo.py"
PHASES = ("backup", "unpack", "migrate", "switch", "restart", "gate")
OTHER, BETWEEN, STARTUP = "other tasks", "between tasks", "start-up/finish"
UNPACK_TASKS = {"Make the folder for artifacts", "Copy the artifact to the host", "Unpack the release"}
PHASE_OF_TASK = {"Run the migration": "migrate", "Switch to the new release": "switch"}
RESULT_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}
GATE_TRIES = 300  # bare gate: 300 x 0.1 s, the role's 30 s gate timeout
SSH_OPTS = [
    "-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=yes",
    "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5",
]  # fmt: skip
NOTES = {
    "backup": "role: set + manifest, verify with restore drill, prune; bare: .backup + sha256sum",
    "unpack": "role: mkdir, copy (checksummed), unpack + fsync + state; bare: mkdir, scp, tar",
    "migrate": "the same command both sides",
    "switch": "role: lock, state file, symlink, prune old releases; bare: ln + mv",
    "restart": "role: incl. the module's 1 s liveness hold after the spawn",
    "gate": "role: first probe to task end; bare: curl loop (0.1 s poll) after the restart",
}

RESOLVE_PLAYBOOK = """---
- name: Resolve the service's catalogue entry for the bare commands
  hosts: aitbc
  gather_facts: false
  tasks:
    - name: Write it on the controller
      ansible.builtin.copy:
        content: "{{ {'entry': aitbc_catalogue[bench_service], 'root': aitbc_root} | to_json }}"
        dest: "{{ bench_out }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
"""


# --------------------------------------------------------------------------------------------------
# The hosts as the bare commands see them
# --------------------------------------------------------------------------------------------------


@dataclass
class Target:
    """One host: how to reach it and the catalogue's coordinator-api values on it."""

    host: SshHost
    root: str
    entry: dict[str, Any]

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def app_root(self) -> str:
        return str(self.entry["app_root"])

    @property
    def database(self) -> str:
        return str(self.entry["databases"][0])

    @property
    def log_file(self) -> Path:
        return Path(self.entry["log_file"])

    def health_urls(self) -> list[str]:
        paths = [p["path"] for p in self.entry.get("probes", []) if p.get("type") == "http" and "path" in p]
        return [str(self.entry["url"]) + path for path in paths]


def resolve_targets(pool: HostPool, inventory: Path, work: Path) -> list[Target]:
    """The catalogue entry of SERVICE per host, rendered by Ansible (one controller-only playbook)."""
    out = work / "catalogue"
    out.mkdir()
    playbook = work / "resolve.yml"
    playbook.write_text(RESOLVE_PLAYBOOK)
    extra = json.dumps({"bench_service": SERVICE, "bench_out": str(out)})
    run_quiet([str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", extra, str(playbook)], work)
    targets = []
    for host in pool.hosts:
        data = json.loads((out / f"{host.name}.json").read_text())
        targets.append(Target(host=host, root=str(data["root"]), entry=data["entry"]))
    return targets


class Ssh:
    """Plain ssh/scp to the test hosts, one multiplexed master connection per host."""

    def __init__(self, key: Path, work: Path) -> None:
        self.key = key
        self.control = work / "cm"
        self.control.mkdir(mode=0o700)
        self.opened: list[SshHost] = []

    def _opts(self, host: SshHost, mux: bool = True) -> list[str]:
        opts = ["-i", str(self.key), *SSH_OPTS]
        if mux:
            path = self.control / f"{host.name}.sock"
            opts += ["-o", "ControlMaster=auto", "-o", f"ControlPath={path}", "-o", "ControlPersist=600"]
        else:
            opts += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        return opts

    def run(self, host: SshHost, script: str, mux: bool = True) -> str:
        argv = ["ssh", *self._opts(host, mux), "-p", str(host.port), f"root@{host.address}", script]
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise SystemExit(
                f"ssh {host.name} failed ({done.returncode}): {script[:300]}\n{done.stderr[-1500:]}"
            )
        return done.stdout

    def copy(self, host: SshHost, source: Path, dest: str) -> None:
        argv = [
            "scp",
            "-q",
            *self._opts(host),
            "-P",
            str(host.port),
            str(source),
            f"root@{host.address}:{dest}",
        ]
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"scp to {host.name} failed ({done.returncode}): {done.stderr[-1500:]}")

    def open(self, hosts: list[SshHost]) -> None:
        for host in hosts:
            self.opened.append(host)
            self.run(host, "true")

    def close(self) -> None:
        """Stop the master connections (background ssh processes this benchmark started)."""
        for host in self.opened:
            argv = ["ssh", *self._opts(host), "-p", str(host.port), "-O", "exit", f"root@{host.address}"]
            subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        self.opened.clear()


# --------------------------------------------------------------------------------------------------
# opsrunner deploy and its phases
# --------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One deploy of all hosts: seconds per row (phases and the rest), wall time, controller CPU."""

    wall: float
    cpu: float
    rows: dict[str, float]
    tasks: dict[str, float] = field(default_factory=dict)  # "phase: task" -> seconds, summed over hosts
    restart_parts: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build_release(version: str, out: Path) -> Path:
    subprocess.run(
        [sys.executable, str(DEMO), "release", "--version", version, "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out


def opsrunner_deploy(version: str, tarball: Path, inventory: Path, work: Path) -> tuple[float, float, dict]:
    """Wall time, controller CPU and the --json payload of one `opsrunner deploy`."""
    argv = [str(BIN / "opsrunner"), "deploy", version, "--from", str(tarball), "--serial", "1"]
    argv += ["-i", str(inventory), "--json"]
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    cpu, start = children_cpu(), time.perf_counter()
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    if done.returncode in (130, -signal.SIGINT):
        raise KeyboardInterrupt  # Ctrl-C reached opsrunner first
    try:
        payload = json.loads(done.stdout)
    except json.JSONDecodeError:
        payload = {}
    if done.returncode != 0 or payload.get("outcome") != "ok":
        failures = payload.get("failures") or done.stderr[-2000:]
        raise SystemExit(f"opsrunner deploy {version} failed ({done.returncode}): {failures}")
    wrong = {
        h: r.get("current") for h, r in payload.get("releases", {}).items() if r.get("current") != version
    }
    if wrong or not payload.get("releases"):
        raise SystemExit(
            f"opsrunner deploy {version}: hosts not on {version}: {wrong or payload.get('releases')}"
        )
    return wall, cpu, payload


def read_events(artifact_dir: Path) -> list[dict[str, Any]]:
    files = sorted((artifact_dir / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
    return [json.loads(path.read_text()) for path in files]


def phase_of(data: dict[str, Any]) -> str:
    role, task = data.get("role"), data.get("task") or ""
    if role == "backup":
        return "backup"
    if role == "services":
        return "restart+gate"
    if task in UNPACK_TASKS:
        return "unpack"
    return PHASE_OF_TASK.get(task, OTHER)


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


def log_marks(log_file: Path, start: datetime, end: datetime) -> dict[str, datetime]:
    """From the coordinator's log, within [start, end]: SIGTERM received, new process listening, and
    the first /health request after that (the first probe of the gate)."""
    marks: dict[str, datetime] = {}
    for line in log_file.read_text(errors="replace").splitlines():
        head, _, rest = line.partition(" ")
        try:
            at = stamp(head)
        except ValueError:
            continue
        if not start <= at <= end:
            continue
        if "received SIGTERM" in rest:
            marks.setdefault("sigterm", at)
        elif "started, listening" in rest and "sigterm" in marks:
            marks.setdefault("listening", at)
        elif '"GET /health' in rest and "listening" in marks:
            marks.setdefault("probe", at)
    return marks


def split_restart(data: dict[str, Any], target: Target, sample: Sample) -> None:
    """Split the services task of one host into restart and gate (see the module docstring)."""
    start, end = stamp(data["start"]), stamp(data["end"])
    marks = log_marks(target.log_file, start, end)
    total = (end - start).total_seconds()
    if {"sigterm", "listening", "probe"} <= marks.keys():
        gate = (end - marks["probe"]).total_seconds()
        parts = {
            "task start -> SIGTERM (Ansible, ssh, module start)": marks["sigterm"] - start,
            "SIGTERM -> new process listening": marks["listening"] - marks["sigterm"],
            "listening -> first probe (module's liveness hold)": marks["probe"] - marks["listening"],
        }
        for name, delta in parts.items():
            sample.restart_parts[name] = sample.restart_parts.get(name, 0.0) + delta.total_seconds()
    else:  # no log marks: the probes' own latency is a lower bound of the gate
        probes = [p for r in data.get("res", {}).get("results", []) for p in r.get("probes", [])]
        gate = sum(float(p.get("latency_ms") or 0) for p in probes) / 1000
        sample.notes.append(f"{target.name}: coordinator log marks missing, gate = probe latency")
    sample.rows["restart"] += total - gate
    sample.rows["gate"] += gate


def deploy_sample(wall: float, cpu: float, payload: dict, targets: list[Target]) -> Sample:
    """Per-phase seconds of one opsrunner deploy from its job_events."""
    events = read_events(Path(payload["artifact_dir"]))
    sample = Sample(wall=wall, cpu=cpu, rows=dict.fromkeys((*PHASES, OTHER, BETWEEN, STARTUP), 0.0))
    by_name = {t.name: t for t in targets}
    created = {e["event"]: stamp(e["created"]) for e in events if e["event"].startswith("playbook_on_st")}
    span = (created["playbook_on_stats"] - created["playbook_on_start"]).total_seconds()
    tasks_total = 0.0
    for event in events:
        data = event.get("event_data", {})
        if event["event"] not in RESULT_EVENTS or data.get("duration") is None:
            continue
        seconds = float(data["duration"])
        tasks_total += seconds
        phase = phase_of(data)
        if phase == "restart+gate":
            split_restart(data, by_name[data["host"]], sample)
        else:
            sample.rows[phase] += seconds
        label = f"{phase}: {data.get('task')}"
        sample.tasks[label] = sample.tasks.get(label, 0.0) + seconds
    sample.rows[BETWEEN] = span - tasks_total
    sample.rows[STARTUP] = wall - span
    return sample


# --------------------------------------------------------------------------------------------------
# The bare deploy
# --------------------------------------------------------------------------------------------------


def q(text: str) -> str:
    return shlex.quote(text)


def restart_script(target: Target) -> str:
    """Stop the pidfile's process (wait until it is gone or a zombie), start the catalogue command in
    its own session with nohup, append to the log, write the pidfile."""
    entry = target.entry
    pidfile = q(entry["pidfile"])
    env = " ".join(q(f"{k}={v}") for k, v in (entry.get("env") or {}).items())
    return (
        f"pid=$(cat {pidfile} 2>/dev/null); "
        'if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then '
        'while [ -e /proc/$pid ] && ! grep -q "^State:[[:space:]]*Z" /proc/$pid/status 2>/dev/null; '
        "do sleep 0.05; done; fi; "
        f"cd {q(target.root)} || exit 1; "
        f"env {env} setsid nohup {entry['command']} >> {q(str(target.log_file))} 2>&1 < /dev/null & "
        f"echo $! > {pidfile}"
    )


def gate_script(target: Target) -> str:
    """Poll the http probe paths every 0.1 s until all answer 200; print the first one's body."""
    first, *rest = target.health_urls()
    others = "".join(f" && curl -fsS -o /dev/null {q(url)}" for url in rest)
    return (
        f"i=0; until body=$(curl -fsS {q(first)}){others}; do i=$((i+1)); "
        f'[ $i -ge {GATE_TRIES} ] && exit 1; sleep 0.1; done; printf "%s" "$body"'
    )


def bare_steps(target: Target, name: str, backups: str) -> dict[str, list[Any]]:
    """The commands of each phase for one host: ssh scripts, or ("scp", dest) for the copy."""
    app = target.app_root
    release = f"{app}/releases/{name}"
    archive = f"{app}/artifacts/{name}.tar.gz"
    migrate = (
        str(target.entry["migrate_command"]).replace("{release_dir}", release).replace("{version}", name)
    )
    return {
        "backup": [
            f"mkdir -p {q(backups)} && sqlite3 {q(target.database)} {q(f'.backup {backups}/coordinator.db')}"
            f" && sha256sum {q(backups)}/coordinator.db"
        ],
        "unpack": [
            f"mkdir -p {q(app)}/artifacts {q(release)}",
            ("scp", archive),
            f"tar xzf {q(archive)} -C {q(release)} --strip-components=1",
        ],
        "migrate": [migrate],
        "switch": [f"cd {q(app)} && ln -sfn releases/{q(name)} .current.bare && mv -T .current.bare current"],
        "restart": [restart_script(target)],
        "gate": [gate_script(target)],
    }


def run_step(ssh: Ssh, target: Target, step: Any, tarball: Path) -> str:
    if isinstance(step, tuple):
        ssh.copy(target.host, tarball, step[1])
        return ""
    return ssh.run(target.host, step)


def check_health(target: Target, body: str, name: str) -> None:
    try:
        version = json.loads(body).get("version")
    except (json.JSONDecodeError, AttributeError):
        version = None
    if version != name:
        raise SystemExit(f"bare deploy on {target.name}: /health reports {version!r}, expected {name!r}")


def bare_deploy(ssh: Ssh, targets: list[Target], name: str, tarball: Path) -> Sample:
    """All hosts one after the other, each phase timed by itself; wall = the sum of the phases."""
    sample = Sample(wall=0.0, cpu=0.0, rows=dict.fromkeys(PHASES, 0.0))
    cpu = children_cpu()
    for target in targets:
        steps = bare_steps(target, name, f"{target.root}/bench-backups/{name}")
        restart_at = datetime.now(UTC)
        body = ""
        for phase in PHASES:
            if phase == "restart":
                restart_at = datetime.now(UTC)
            start = time.perf_counter()
            for step in steps[phase]:
                body = run_step(ssh, target, step, tarball)
            sample.rows[phase] += time.perf_counter() - start
        check_health(target, body, name)
        marks = log_marks(target.log_file, restart_at, datetime.now(UTC))
        if {"sigterm", "listening"} <= marks.keys():
            parts = {
                "restart start -> SIGTERM (ssh, shell)": marks["sigterm"] - restart_at,
                "SIGTERM -> new process listening": marks["listening"] - marks["sigterm"],
            }
            for key, delta in parts.items():
                sample.restart_parts[key] = sample.restart_parts.get(key, 0.0) + delta.total_seconds()
    sample.cpu = children_cpu() - cpu
    sample.wall = sum(sample.rows.values())
    return sample


def same_command(target: Target) -> None:
    """The process in the pidfile runs the catalogue's command line (so the service module owns it)."""
    pid = Path(target.entry["pidfile"]).read_text().split()[0]
    actual = Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")
    if actual != shlex.split(str(target.entry["command"])):
        raise SystemExit(f"{target.name}: bare restart runs {actual}, not the catalogue command")


def reset_after_bare(ssh: Ssh, targets: list[Target], name: str, links: dict[str, str]) -> None:
    """Untimed: `current` back to the recorded release, the bare release and backup removed, the
    coordinator restarted from the recorded release and healthy again."""
    for target in targets:
        same_command(target)
        app = q(target.app_root)
        ssh.run(
            target.host,
            f"cd {app} && ln -sfn {q(links[target.name])} .current.bare && mv -T .current.bare current && "
            f"rm -rf releases/{q(name)} artifacts/{q(name)}.tar.gz {q(target.root)}/bench-backups/{q(name)}",
        )
        ssh.run(target.host, restart_script(target))
        ssh.run(target.host, gate_script(target))


def current_links(targets: list[Target]) -> dict[str, str]:
    return {t.name: os.readlink(Path(t.app_root) / "current") for t in targets}


# --------------------------------------------------------------------------------------------------
# Rounds and report
# --------------------------------------------------------------------------------------------------


@dataclass
class Results:
    deploys: list[Sample] = field(default_factory=list)
    bares: list[Sample] = field(default_factory=list)
    ssh_host: str = ""
    ssh_fresh: float = 0.0
    ssh_mux: float = 0.0


def one_round(n: int, ctx: dict[str, Any], results: Results) -> None:
    version, work = str(2 + n), ctx["work"]
    tarball = build_release(version, work / "releases" / f"aitbc-demo-{version}.tar.gz")
    bare_name = f"bare{version}"
    bare_tarball = build_release(bare_name, work / "releases" / f"aitbc-demo-{bare_name}.tar.gz")

    def run_opsrunner() -> None:
        wall, cpu, payload = opsrunner_deploy(version, tarball, ctx["inventory"], work)
        results.deploys.append(deploy_sample(wall, cpu, payload, ctx["targets"]))

    def run_bare() -> None:
        links = current_links(ctx["targets"])
        results.bares.append(bare_deploy(ctx["ssh"], ctx["targets"], bare_name, bare_tarball))
        reset_after_bare(ctx["ssh"], ctx["targets"], bare_name, links)

    for action in (run_opsrunner, run_bare) if n % 2 == 0 else (run_bare, run_opsrunner):
        action()
    d, b = results.deploys[-1], results.bares[-1]
    print(f"  round {n + 1}: opsrunner deploy {version} {d.wall:.2f} s, bare {b.wall:.2f} s", file=sys.stderr)


def ssh_cost(ssh: Ssh, host: SshHost, rounds: int = 5) -> tuple[float, float]:
    """Median seconds of `ssh host true`: a fresh connection, and over the multiplexed master."""

    def timed_true(mux: bool) -> float:
        start = time.perf_counter()
        ssh.run(host, "true", mux=mux)
        return time.perf_counter() - start

    fresh = statistics.median(timed_true(False) for _ in range(rounds))
    mux = statistics.median(timed_true(True) for _ in range(rounds))
    return fresh, mux


def median_of(samples: list[Sample], key: str) -> float:
    return statistics.median(s.rows.get(key, 0.0) for s in samples)


def median_dict(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = dict.fromkeys(k for d in dicts for k in d)
    return {k: statistics.median(d.get(k, 0.0) for d in dicts) for k in keys}


def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "-"


def report(results: Results, hosts: int, repeat: int) -> None:
    deploys, bares = results.deploys, results.bares
    wall = statistics.median(s.wall for s in deploys)
    bare = statistics.median(s.wall for s in bares)
    print(
        f"deploy of {SERVICE} to {hosts} SSH test hosts, --serial 1, median of {repeat} round(s) (case order "
        "alternates); times are sums over the hosts. 2-core machine with other work running: noisy."
    )
    print(f"  {'phase':18} {'opsrunner':>10} {'share':>6} {'bare':>8} {'ratio':>7}   notes")
    for phase in PHASES:
        ops, base = median_of(deploys, phase), median_of(bares, phase)
        ratio = fmt_ratio(ops, base)
        print(f"  {phase:18} {ops:9.2f}s {ops / wall:6.0%} {base:7.2f}s {ratio:>7}   {NOTES[phase]}")
    both = [statistics.median(s.rows["restart"] + s.rows["gate"] for s in runs) for runs in (deploys, bares)]
    print(
        f"  {'= restart+gate':18} {both[0]:9.2f}s {both[0] / wall:6.0%} {both[1]:7.2f}s "
        f"{fmt_ratio(*both):>7}   compare these two together: the bare restart returns before it listens"
    )
    for row, note in (
        (OTHER, "checks, controller stat/checksum, release_info, include_role, decision record"),
        (BETWEEN, "playbook span minus all task durations: strategy, includes, per-batch play start"),
        (STARTUP, "wall minus playbook span: opsrunner/ansible-runner/ansible-playbook start, record"),
    ):
        ops = median_of(deploys, row)
        print(f"  {row:18} {ops:9.2f}s {ops / wall:6.0%} {'-':>8} {'-':>7}   {note}")
    work_ops = statistics.median(sum(s.rows[p] for p in PHASES) for s in deploys)
    print(f"  {'total (wall)':18} {wall:9.2f}s {1:6.0%} {bare:7.2f}s {fmt_ratio(wall, bare):>7}")
    print("  (phase medians are taken separately, so the rows need not add up to the wall time exactly)")
    print(
        f"orchestration overhead: opsrunner deploy wall / bare sum = {fmt_ratio(wall, bare)} "
        f"({wall:.2f} s vs {bare:.2f} s); the six phases alone: {fmt_ratio(work_ops, bare)} "
        f"({work_ops:.2f} s vs {bare:.2f} s)"
    )
    cpu_ops = statistics.median(s.cpu for s in deploys)
    cpu_bare = statistics.median(s.cpu for s in bares)
    print(f"controller CPU (this process's children): opsrunner {cpu_ops:.2f} s, bare {cpu_bare:.2f} s")
    print(
        f"ssh `true` on {results.ssh_host}: fresh connection {results.ssh_fresh * 1000:.0f} ms, "
        f"multiplexed {results.ssh_mux * 1000:.0f} ms (the bare case is multiplexed, 8 ssh/scp per host)"
    )
    print("restart, from the coordinator's log (sum over hosts, median):")
    for name, seconds in median_dict([s.restart_parts for s in deploys]).items():
        print(f"  opsrunner  {name:52} {seconds:6.2f} s")
    for name, seconds in median_dict([s.restart_parts for s in bares]).items():
        print(f"  bare       {name:52} {seconds:6.2f} s")
    print("opsrunner tasks by time (sum over hosts, median):")
    for label, seconds in sorted(median_dict([s.tasks for s in deploys]).items(), key=lambda kv: -kv[1]):
        print(f"  {seconds:6.2f} s  {seconds / wall:4.0%}  {label}")
    for note in dict.fromkeys(n for s in deploys for n in s.notes):
        print(f"note: {note}")


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds, each deploying a new version (default 3)"
    )
    parser.add_argument("--hosts", type=int, default=3, help="SSH test hosts (default 3)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.hosts < 1:
        parser.error("--repeat and --hosts must be at least 1")
    return args


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: ssh masters, demo, hosts down


@dataclass
class Stack:
    """What main() brings up, in the order it is torn down (reversed)."""

    pool: HostPool
    ssh: Ssh
    inventory: Path
    work: Path
    demo_up: bool = False

    def close(self) -> None:
        try:
            try:
                self.ssh.close()
            finally:
                if self.demo_up:
                    run_quiet([str(BIN / "opsrunner"), "demo", "down", "-i", str(self.inventory)], self.work)
        finally:
            self.pool.close()


def measure(args: argparse.Namespace, work: Path) -> Results:
    pool = create_hosts(args.hosts, work / "pool", paramiko_host=False)
    stack = Stack(pool=pool, ssh=Ssh(pool.client_key, work), inventory=pool.inventory, work=work)
    results = Results()
    try:
        stack.demo_up = True  # set before the call: a half-started stack is stopped too
        run_quiet([str(BIN / "opsrunner"), "demo", "up", "-i", str(stack.inventory)], work)
        targets = resolve_targets(pool, stack.inventory, work)
        stack.ssh.open([t.host for t in targets])
        results.ssh_host = targets[0].name
        results.ssh_fresh, results.ssh_mux = ssh_cost(stack.ssh, targets[0].host)
        ctx = {"work": work, "inventory": stack.inventory, "targets": targets, "ssh": stack.ssh}
        for n in range(args.repeat):
            one_round(n, ctx, results)
    finally:
        stack.close()
    return results


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        with tempfile.TemporaryDirectory(prefix="aitbc-bench-deploy-") as tmp:
            results = measure(args, Path(tmp))
    except KeyboardInterrupt:
        raise SystemExit("interrupted: ssh masters, demo stack and hosts torn down") from None
    report(results, args.hosts, args.repeat)


if __name__ == "__main__":
    main(sys.argv[1:])
