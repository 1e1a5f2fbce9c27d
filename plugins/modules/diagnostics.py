#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# fmt: off
DOCUMENTATION = r'''
---
module: diagnostics
short_description: Collect an incident bundle (load, CPU, memory, disks, sockets, processes, logs) on a host
version_added: 0.1.0
description:
  - Collects, in one module call, what an operator looks at first during an incident - load, CPU use,
    memory, filesystems, listening sockets and who owns them, the processes of each service, their
    recent log lines and how often they restarted - and returns it as structured data in
    RV(diagnostics) plus a short human report in RV(summary).
  - Reads C(/proc) directly, so it works without lsof, netstat or ss. Only C(journalctl) and
    C(systemctl) are run, and only for services that name a systemd unit.
  - Every section is bounded. All sections start together and share one time budget,
    O(section_timeout). A section that fails or runs out of time is reported as an C(error) key
    with a one-line message instead of its data, and the others are still returned; the task itself
    does not fail.
    Scans that grow with the host (processes, file descriptors, mounts) stop at the budget or at a
    fixed limit and say so (C(complete=false)).
  - Needs only the Python standard library on the managed host, and Linux (C(/proc)).
author:
  - aitbc-ops developers (@aitbc-ops)
extends_documentation_fragment:
  - aitbc.ops.attributes
  - aitbc.ops.attributes.posix
  - aitbc.ops.attributes.info_module
attributes:
  check_mode:
    details: The module only reads, so it collects the same bundle in check mode.
options:
  services:
    description:
      - The services to report on in the V(processes), V(logs) and V(restarts) sections. The system
        sections do not need any.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name of the service, unique within the task. Keys the per-service results.
        type: str
        required: true
      pidfile:
        description:
          - File holding the main pid of the service. The first way of finding its process.
        type: path
      process:
        description:
          - Used when O(services[].pidfile) is not given. Every live process whose C(comm) name
            equals this, or whose command line contains it, belongs to the service (the module's own
            process and its parents are left out).
        type: str
      port:
        description:
          - A port the service listens on. The V(sockets) section marks the socket with the service
            name and the V(processes) section reports whether the port is listening.
          - When neither O(services[].pidfile), O(services[].process) nor O(services[].unit) is given,
            the process that owns the listening socket is the service's process.
        type: int
      log_file:
        description:
          - Log file whose last O(log_lines) lines are returned. Read backwards from the end, so the
            size of the file does not matter.
        type: path
      journal_unit:
        description:
          - systemd unit whose journal is read with C(journalctl -u UNIT -n N --no-pager).
          - Defaults to O(services[].unit) when O(services[].log_file) is not given.
          - When C(journalctl) is not installed the result carries a note instead of lines.
        type: str
      unit:
        description:
          - systemd unit of the service. Its C(MainPID) finds the process when O(services[].pidfile)
            and O(services[].process) are not given, and C(NRestarts) counts restarts when
            O(restarts_file) is not given.
        type: str
  log_lines:
    description:
      - How many of the last log lines to return per service (0 to 10000).
    type: int
    default: 50
  include:
    description:
      - The sections to collect. All of them by default.
      - V(load) - 1, 5 and 15 minute load averages, per CPU too.
      - V(cpu) - busy, iowait and steal percent over two samples of C(/proc/stat) 0.2 s apart
        (the module's own CPU time is left out).
      - V(memory) - total, available and used memory and swap.
      - V(disk) - size, used, free and inode use of each real filesystem in C(/proc/mounts)
        (kernel and pseudo filesystems such as proc, sysfs, cgroup, devpts and squashfs are skipped,
        bind mounts are listed once).
      - V(sockets) - listening TCP and unconnected UDP sockets (IPv4 and IPv6) of the host's network
        namespace with the process that owns each one, found through C(/proc/PID/fd); TCP state counts.
      - V(processes) - the processes of each service with command line, state, RSS, threads,
        open files, start time and uptime, and their child processes.
      - V(logs) - the last O(log_lines) lines of each service's log file or journal.
      - V(restarts) - restarts of each service in the last 24 hours from O(restarts_file), or
        systemd's C(NRestarts) for services with a unit.
    type: list
    elements: str
    choices: [load, cpu, memory, disk, sockets, processes, logs, restarts]
  restarts_file:
    description:
      - A JSON lines file with one object per restart, with the keys C(time) and C(service), as the
        heartbeat writes it. C(time) is epoch seconds or ISO 8601 (UTC when it has no offset).
      - The V(restarts) section counts each service's entries of the last 24 hours. Only the last
        8 MiB of the file are read.
    type: path
  section_timeout:
    description:
      - Seconds the sections may take. They run concurrently, so this bounds the whole collection
        (plus half a second of grace for a section to report its own timeout).
    type: float
    default: 5
notes:
  - The task never reports a change.
  - Listening sockets are those of the network namespace the module runs in. Owners are found by
    scanning C(/proc/PID/fd); without root, sockets of other users' processes have no owner
    (C(pid=null)).
seealso:
  - module: aitbc.ops.health
  - module: aitbc.ops.service
'''

EXAMPLES = r'''
- name: Collect an incident bundle for the AITBC stack
  aitbc.ops.diagnostics:
    services:
      - name: coordinator-api
        pidfile: /run/aitbc/coordinator-api.pid
        port: 8000
        log_file: /var/log/aitbc/coordinator-api.log
      - name: blockchain-node
        unit: aitbc-blockchain-node.service
        port: 8545
      - name: redis
        process: redis-server
        port: 6379
        log_file: /var/log/redis/redis-server.log
    restarts_file: /var/lib/aitbc-ops/restarts.jsonl
    log_lines: 100
  register: bundle

- name: Print the report
  ansible.builtin.debug:
    msg: "{{ bundle.summary.splitlines() }}"

- name: Only the system sections, quickly
  aitbc.ops.diagnostics:
    include: [load, cpu, memory, disk]
    section_timeout: 2
'''

RETURN = r'''
msg:
  description: One line - how many sections were collected, how long it took, which sections failed.
  returned: always
  type: str
  sample: "collected 8 section(s) in 0.24 s"
failed_sections:
  description: Names of the sections that returned an error.
  returned: success
  type: list
  elements: str
  sample: []
summary:
  description: A short human report, one part per section, for printing.
  returned: success
  type: str
  sample: |-
    diagnostics of web1 at 2025-01-01T12:00:00Z (0.24 s)
    load: 0.52 0.40 0.33 on 4 cpu(s) (0.13 0.10 0.08 per cpu), 2/345 runnable
    cpu: 12.5% busy, 0.4% iowait, 0.0% steal (over 0.20 s)
diagnostics:
  description:
    - The bundle. Each section requested in O(include) is a key; a section that failed holds only
      an C(error) key with a one-line message instead of its data.
  returned: success
  type: dict
  contains:
    host:
      description: Host name of the managed host.
      type: str
      sample: web1
    collected_at:
      description: When the collection started (UTC, ISO 8601).
      type: str
      sample: "2025-01-01T12:00:00Z"
    duration_s:
      description: How long the collection took.
      type: float
      sample: 0.24
    sections:
      description: The sections collected, in order.
      type: list
      elements: str
      sample: [load, cpu, memory, disk, sockets, processes, logs, restarts]
    timings_ms:
      description: Milliseconds each section took.
      type: dict
      sample: {"load": 0.2, "cpu": 201.4}
    load:
      description: C(load1), C(load5), C(load15), C(cpus), C(per_cpu) (the three averages divided by
        C(cpus)), C(runnable) and C(tasks).
      type: dict
      sample: {"load1": 0.52, "load5": 0.4, "load15": 0.33, "cpus": 4,
               "per_cpu": {"load1": 0.13, "load5": 0.1, "load15": 0.08}, "runnable": 2, "tasks": 345}
    cpu:
      description: C(busy_percent), C(iowait_percent), C(steal_percent), C(interval_s), C(cpus) and
        C(own_ticks) (the collector's own CPU time, left out of C(busy_percent)).
      type: dict
      sample: {"busy_percent": 12.5, "iowait_percent": 0.4, "steal_percent": 0.0, "interval_s": 0.2}
    memory:
      description: C(total_bytes), C(available_bytes), C(used_bytes), C(used_percent),
        C(available_percent), C(swap_total_bytes), C(swap_used_bytes) and C(swap_used_percent).
      type: dict
      sample: {"total_bytes": 8330240000, "available_bytes": 5120000000, "used_percent": 38.5}
    disk:
      description:
        - C(mounts) - one entry per filesystem with C(mount), C(device), C(fstype), C(size_bytes),
          C(used_bytes), C(free_bytes) (available to unprivileged users), C(used_percent) (as df
          computes it) and C(inodes_used_percent); or C(error) when statvfs failed or timed out.
        - C(skipped) (pseudo filesystems and bind mounts) and C(complete).
      type: dict
      sample: {"mounts": [{"mount": "/", "device": "/dev/sda1", "fstype": "ext4", "size_bytes": 31526481920,
               "used_bytes": 13525032960, "free_bytes": 16372297728, "used_percent": 45.2}],
               "skipped": 21, "complete": true}
    sockets:
      description:
        - C(listening) - one entry per listening socket with C(proto) (V(tcp), V(tcp6), V(udp),
          V(udp6)), C(address), C(port), C(inode), C(pid) and C(command) of the owning process
          (V(null) when not found), C(service) (the service with that O(services[].port)), and for
          TCP C(accept_queue) (connections waiting to be accepted).
        - C(listening_count), C(tcp_states) (count of TCP sockets per state), C(tables) (the
          C(/proc/net) tables read) and C(scan) (C(processes) scanned, C(permission_denied),
          C(unresolved), C(complete), C(stopped), C(duration_ms)).
      type: dict
      sample: {"listening": [{"proto": "tcp", "address": "127.0.0.1", "port": 6379, "inode": 123456,
               "pid": 812, "command": "redis-server", "service": "redis", "accept_queue": 0}],
               "listening_count": 1, "tcp_states": {"LISTEN": 1, "ESTABLISHED": 3}}
    processes:
      description:
        - C(services) - per service name C(found_by) (V(pidfile), V(process), V(unit) or V(port)),
          C(pids), C(running), C(port) and C(port_listening) when a port is given, C(note) when
          nothing was found, and C(processes).
        - Each process has C(pid), C(ppid), C(command), C(cmdline), C(state), C(state_name), C(user),
          C(rss_bytes), C(threads), C(open_files), C(max_open_files), C(cpu_time_s), C(started_at),
          C(uptime_s), C(children_count) and C(children) (C(pid), C(command), C(state), C(rss_bytes)).
        - C(process_count) - processes on the host.
      type: dict
      sample: {"services": {"redis": {"found_by": "pidfile", "pids": [812], "running": true,
               "processes": [{"pid": 812, "command": "redis-server", "state": "S", "rss_bytes": 9437184,
               "threads": 5, "open_files": 9, "uptime_s": 3600.2, "children": []}]}}}
    logs:
      description:
        - C(services) - per service name C(source) (V(file) or V(journal)), C(path) or C(unit), C(lines),
          and for files C(size_bytes), C(modified_at), C(age_s) and C(truncated); C(note) or C(error)
          when no lines could be read.
        - C(lines_requested) - O(log_lines).
      type: dict
      sample: {"services": {"redis": {"source": "file", "path": "/var/log/redis.log",
               "lines": ["Ready to accept connections"]}}, "lines_requested": 50}
    restarts:
      description:
        - C(services) - per service name C(last_24h) and C(last) (from O(restarts_file)) or C(nrestarts)
          (systemd), or a C(note) saying why it is unknown.
        - C(source) (V(file), V(systemd) or V(null)); with a file also C(path), C(window_s) and
          C(bad_lines).
      type: dict
      sample: {"source": "file", "services": {"redis": {"last_24h": 2, "last": "2025-01-01T11:40:00Z"}}}
'''
# fmt: on

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.base import (
    DEFAULT_LOG_LINES,
    DEFAULT_SECTION_TIMEOUT,
    SECTIONS,
    DiagnosticsError,
)
from ansible_collections.aitbc.ops.plugins.module_utils.diagnostics.collect import collect


def main():
    module = AnsibleModule(
        argument_spec=dict(
            services=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    pidfile=dict(type="path"),
                    process=dict(type="str"),
                    port=dict(type="int"),
                    log_file=dict(type="path"),
                    journal_unit=dict(type="str"),
                    unit=dict(type="str"),
                ),
            ),
            log_lines=dict(type="int", default=DEFAULT_LOG_LINES),
            include=dict(type="list", elements="str", choices=list(SECTIONS)),
            restarts_file=dict(type="path"),
            section_timeout=dict(type="float", default=DEFAULT_SECTION_TIMEOUT),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = collect(
            services=params["services"],
            include=params["include"],
            log_lines=params["log_lines"],
            restarts_file=params["restarts_file"],
            section_timeout=params["section_timeout"],
        )
    except DiagnosticsError as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
