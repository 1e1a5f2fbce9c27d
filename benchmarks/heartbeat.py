"""`opsrunner heartbeat` on real SSH hosts versus a naive one-task-per-check playbook and the ping floor.

On N SSH test hosts (tests/integration/testhosts.py, default 8) running the demo stack, each host is
checked for its 5 services: coordinator /health, RPC /health, wallet /health, Redis PING, the node's
process. All three cases run through the repository's ansible.cfg (aitbc.ops.memory callback enabled,
as configured, so every case records its run), median of interleaved rounds:

- opsrunner: `opsrunner heartbeat -i INV` (remediation on; the stack is healthy, so nothing restarts),
  with `heartbeat_probes` set in the inventory to those 5 probes (no host disk/memory probes);
- naive: plain `ansible-playbook`, one builtin task per check (uri x3, command redis-cli ping, shell
  test -e /proc/PID): 5 tasks per host;
- ping floor: plain `ansible-playbook`, one `ansible.builtin.ping` task per host.

Goals: naive/opsrunner >= 4x, opsrunner/ping-floor <= 1.5x. Then the scaling of `opsrunner heartbeat`
on 1, 2, 4 and 8 hosts of the same pool (--limit), interleaved. Everything started here (demo stack,
hosts, namespaces) is torn down on exit, failure or Ctrl-C included.

Usage: python benchmarks/heartbeat.py [ROUNDS] [HOSTS]
"""

from __future__ import annotations

import resource
import signal
import statistics
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import yaml
from _common import BIN, REPO, run_quiet, timed, verdict

sys.path.insert(0, str(REPO / "tests" / "integration"))
from testhosts import create_hosts  # noqa: E402

NAIVE_GOAL = 4.0
FLOOR_GOAL = 1.5
SIZES = (1, 2, 4, 8)

# The catalogue's own probes minus coordinator /health/ready: one probe per service, 5 per host, as the
# naive playbook checks (the `<service> running` probes each service gets first are left out here).
FIVE_PROBES = (
    "{{ aitbc_health_probes | rejectattr('name', 'equalto', 'coordinator-api /health/ready')"
    " | rejectattr('type', 'equalto', 'service') | list }}"
)

NAIVE_PLAYBOOK = """---
- name: Naive heartbeat, one builtin task per check
  hosts: aitbc
  gather_facts: false
  tasks:
    - name: coordinator-api /health
      ansible.builtin.uri:
        url: "http://127.0.0.1:{{ aitbc_ports.coordinator_api }}/health"
        status_code: 200
    - name: blockchain-rpc /health
      ansible.builtin.uri:
        url: "http://127.0.0.1:{{ aitbc_ports.blockchain_rpc }}/health"
        status_code: 200
    - name: wallet-daemon /health
      ansible.builtin.uri:
        url: "http://127.0.0.1:{{ aitbc_ports.wallet_daemon }}/health"
        status_code: 200
    - name: redis PING
      ansible.builtin.command: redis-cli -p {{ aitbc_ports.redis }} ping
      register: pong
      changed_when: false
      failed_when: pong.stdout != 'PONG'
    - name: blockchain-node process
      ansible.builtin.shell: test -e /proc/$(cat {{ aitbc_run_dir }}/blockchain-node.pid)
      changed_when: false
"""

PING_PLAYBOOK = """---
- name: Floor, one ping per host
  hosts: aitbc
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""


def five_probe_inventory(pool_inventory: Path, target: Path) -> Path:
    """The pool's inventory plus heartbeat_probes = the 5 service probes (group var of `aitbc`)."""
    data = yaml.safe_load(pool_inventory.read_text())
    data["all"]["children"]["aitbc"]["vars"] = {"heartbeat_probes": FIVE_PROBES}
    target.mkdir(parents=True, exist_ok=True)
    (target / "hosts.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    (target / "group_vars").symlink_to(REPO / "inventory" / "group_vars")
    return target / "hosts.yml"


def check_five_probes(inventory: Path, work: Path, hosts: list[str]) -> None:
    """One heartbeat with --junit: each host must report exactly the 5 service probes, all passing."""
    junit = work / "junit.xml"
    run_quiet([str(BIN / "opsrunner"), "heartbeat", "-i", str(inventory), "--junit", str(junit)], work)
    cases = ET.parse(junit).getroot().iter("testcase")
    per_host = Counter(case.get("classname") for case in cases if case.get("name") != "reachable")
    wrong = {host: per_host.get(host, 0) for host in hosts if per_host.get(host, 0) != 5}
    if wrong:
        raise SystemExit(f"expected 5 probes per host, got {wrong} ({junit.read_text()[:2000]})")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def medians_of(cases: dict[str, object], rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall time and controller CPU per case over `rounds` interleaved rounds (order rotates).

    Controller CPU is what this process's children used (ansible, ssh clients), not the test hosts'
    module runs; it is far less sensitive than wall time to other load on the machine.
    """
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for n in range(rounds):
        shift = n % len(names)
        for name in names[shift:] + names[:shift]:
            before = _children_cpu()
            times[name].append(timed(cases[name]))  # type: ignore[arg-type]
            cpu[name].append(_children_cpu() - before)
    return (
        {name: statistics.median(values) for name, values in times.items()},
        {name: statistics.median(values) for name, values in cpu.items()},
    )


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: demo down, hosts down


def main(rounds: int = 5, n_hosts: int = 8) -> None:
    n_hosts = max(n_hosts, 6)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with tempfile.TemporaryDirectory(prefix="aitbc-bench-hb-") as tmp:
        work = Path(tmp)
        pool = create_hosts(n_hosts, work / "pool", paramiko_host=False)
        opsrunner = str(BIN / "opsrunner")
        inventory = work / "inventory" / "hosts.yml"
        demo_up = False
        try:
            inventory = five_probe_inventory(pool.inventory, inventory.parent)
            demo_up = True  # set before the call: a half-started stack is stopped too
            run_quiet([opsrunner, "demo", "up", "-i", str(inventory)], work)
            check_five_probes(inventory, work, pool.names)
            naive = work / "naive.yml"
            naive.write_text(NAIVE_PLAYBOOK)
            floor = work / "ping.yml"
            floor.write_text(PING_PLAYBOOK)
            playbook = str(BIN / "ansible-playbook")
            cases = {
                "opsrunner heartbeat": lambda: run_quiet(
                    [opsrunner, "heartbeat", "-i", str(inventory)], work
                ),
                "naive playbook (5 tasks)": lambda: run_quiet(
                    [playbook, "-i", str(inventory), str(naive)], work
                ),
                "ping floor (1 task)": lambda: run_quiet([playbook, "-i", str(inventory), str(floor)], work),
            }
            medians, cpu = medians_of(cases, rounds)

            sizes = [s for s in SIZES if s <= n_hosts]

            def heartbeat_on(size: int) -> object:
                limit = ",".join(pool.names[:size])
                return lambda: run_quiet(
                    [opsrunner, "heartbeat", "-i", str(inventory), "--limit", limit], work
                )

            scaling, scaling_cpu = medians_of({str(size): heartbeat_on(size) for size in sizes}, rounds)
        finally:
            try:
                if demo_up:
                    run_quiet([opsrunner, "demo", "down", "-i", str(inventory)], work)
            finally:
                pool.close()

    base = medians["opsrunner heartbeat"]
    print(
        f"heartbeat of {n_hosts} SSH hosts x 5 checks (demo stack), median of {rounds} interleaved rounds; "
        "all cases through the repository ansible.cfg (aitbc.ops.memory callback enabled)"
    )
    for name, value in medians.items():
        print(f"  {name}: {value:.2f} s ({value / base:.2f}x of opsrunner), controller CPU {cpu[name]:.2f} s")
    naive_ratio = medians["naive playbook (5 tasks)"] / base
    floor_ratio = base / medians["ping floor (1 task)"]
    print(
        f"ratio naive/opsrunner: {naive_ratio:.2f}x (goal >= {NAIVE_GOAL}x) -> "
        f"{verdict(naive_ratio, NAIVE_GOAL, lower_is_better=False)}"
    )
    print(
        f"ratio opsrunner/ping-floor: {floor_ratio:.2f}x (goal <= {FLOOR_GOAL}x) -> "
        f"{verdict(floor_ratio, FLOOR_GOAL)}"
    )
    print(f"scaling of opsrunner heartbeat (--limit on the {n_hosts}-host pool), median of {rounds} rounds")
    one = scaling[str(sizes[0])]
    for size in sizes:
        value = scaling[str(size)]
        growth = f"time({size})/time(1) = {value / one:.2f}x"
        print(f"  {size} host(s): {value:.2f} s  {growth}  (controller CPU {scaling_cpu[str(size)]:.2f} s)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
