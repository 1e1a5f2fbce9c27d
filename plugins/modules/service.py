#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service
short_description: Start, stop, restart, reload or query a service on any supervision backend
version_added: 0.1.0
author:
  - aitbc-ops developers (@aitbc-ops)
description:
  - Controls one service on the target host and reports its state as structured data.
  - The same task works whatever runs the service, be it a plain command daemonized with a pidfile
    (V(process)), a systemd unit, a supervisord program, a Docker container or a SysV init script.
  - With O(backend=auto) the backend is detected on the target, see O(backend).
  - Idempotent. V(started) on a running service and V(stopped) on a stopped one change nothing.
extends_documentation_fragment:
  - aitbc.ops.attributes
  - aitbc.ops.attributes.posix
  - aitbc.ops.attributes.diff
attributes:
  check_mode:
    support: full
    details: Reports what would change (C(changed) and C(msg)) and changes nothing.
  diff_mode:
    details: The service's state and main pid, before and after.
options:
  name:
    description:
      - Name of the service, as operators type it (for example V(coordinator-api)).
      - Default for O(unit) (plus C(.service)), O(container) and O(program), and the name of the init script.
    type: str
    required: true
  state:
    description:
      - V(started) and V(stopped) act only when needed.
      - V(restarted) always restarts (it starts a stopped service).
      - V(reloaded) always reloads (SIGHUP for V(process), V(supervisor) and V(docker)), and starts a
        stopped service.
      - V(status) changes nothing and returns RV(service).
    type: str
    choices: [started, stopped, restarted, reloaded, status]
    default: status
  backend:
    description:
      - What supervises the service.
      - V(auto) picks V(process) if O(command) or O(pidfile) is given; else V(systemd) if
        C(/run/systemd/system) exists and the unit is known; else V(supervisor) if C(supervisorctl)
        knows the program; else V(docker) if a container of that name exists; else V(sysv) if
        C(/etc/init.d/NAME) exists. Otherwise the task fails with one clear message.
    type: str
    choices: [auto, process, systemd, supervisor, docker, sysv]
    default: auto
  command:
    description:
      - For O(backend=process), the command line to run in the foreground.
      - Split with shell quoting rules and run directly, or run with C(/bin/sh -c) if it uses shell
        syntax (pipes, redirections, C($VAR), globs, C(VAR=value) prefixes).
      - The command must not daemonize itself; the module does that (new session, stdin from
        C(/dev/null), output appended to O(log_file)).
    type: str
  pidfile:
    description:
      - For O(backend=process), where the pid of the daemon is kept (written atomically).
      - A pidfile whose pid is dead, a zombie, or now runs another program is stale. It counts as
        stopped, and is replaced on start or removed on stop.
      - A daemon started with an earlier O(command) (it started when its pidfile was written) is still
        this service. It counts as running, with a warning, until V(restarted) applies the new command.
      - Defaults to C(/run/aitbc-ops/NAME.pid) for root, else a per-user runtime directory.
      - For O(backend=sysv), optionally read to report RV(service.pid).
    type: path
  log_file:
    description:
      - For O(backend=process), the file that receives the daemon's stdout and stderr (appended).
      - Defaults to C(NAME.log) beside O(pidfile).
      - The last lines are reported when the command dies at start.
    type: path
  chdir:
    description:
      - For O(backend=process), the working directory of the daemon.
      - Defaults to C(/).
    type: path
  env:
    description:
      - For O(backend=process), environment variables for the daemon. They override those of the module;
        O(env_file) overrides them (as C(EnvironmentFile=) overrides C(Environment=) in a systemd unit).
      - The daemon does not inherit the run's C(OPSRUNNER_*) markers (a Ctrl-C of the run stops the processes
        carrying them) nor Ansible's C(ANSIBLE_*) settings; O(env) and O(env_file) may still set such names.
      - Values are never echoed in results (module arguments are returned with the values masked).
    type: dict
  env_file:
    description:
      - For O(backend=process), a file of C(KEY=VALUE) lines added to the daemon's environment.
      - Read as systemd reads an C(EnvironmentFile=), so the files M(aitbc.ops.env_file) writes give the same
        environment under both backends - blank lines, C(#) or C(;) comment lines, single quotes (literal),
        double quotes (where a backslash escapes only the double quote, the backslash, the backtick and C($)),
        backslash escapes outside quotes; C($) is never expanded. An C(export) prefix is allowed.
    type: path
  stop_timeout:
    description:
      - For O(backend=process), seconds to wait after SIGTERM (sent to the daemon's process group)
        before SIGKILL.
      - For O(backend=docker), the grace period of C(docker stop) and C(docker restart).
    type: float
    default: 10
  settle:
    description:
      - For O(backend=process), seconds the daemon must stay up after it is started, owning its pidfile
        (the started process, or a process it re-executed into with the same command).
      - If it exits within that time the task fails at once, with its exit status, the time it lived and the
        last lines of O(log_file); if it lost its pidfile or a stranger holds O(port), it is stopped and the
        task fails with that cause.
      - For O(backend=systemd), how long a start retried after a start-limit hit must stay active.
      - Default 3 seconds, or 1 second with O(wait_healthy), whose probes then prove the service up.
    type: float
    aliases: [start_timeout]
  port:
    description:
      - The TCP port the service listens on. For O(backend=process), a process that is not the service (nor
        one of its descendants) listening there is reported in RV(service.detail) and
        RV(service.port_held_by), and V(started)/V(restarted) refuse to start while it holds the port
        (it is never killed).
      - Leftovers of the service's previous daemon (processes still in the session the backend started it
        in, such as nginx's workers after a C(kill -9) of their master) are the service's own, not
        strangers. A start stops them first, and its message says so.
    type: int
  unit:
    description:
      - For O(backend=systemd), the unit name. Defaults to O(name) plus C(.service).
    type: str
  container:
    description:
      - For O(backend=docker), the name or id of an existing container. Defaults to O(name).
    type: str
  program:
    description:
      - For O(backend=supervisor), the program name (C(group:name) for grouped programs).
        Defaults to O(name).
    type: str
  supervisor_config:
    description:
      - For O(backend=supervisor), the supervisord configuration file passed to C(supervisorctl -c).
    type: path
  docker_host:
    description:
      - For O(backend=docker), the daemon socket passed to C(docker -H), for example V(unix:///run/docker.sock).
    type: str
  wait_healthy:
    description:
      - After V(started), V(restarted) or V(reloaded), poll health probes until all pass or the timeout
        expires. The task then fails with the detail of a failing probe.
      - Probes are written as for M(aitbc.ops.health), each with its C(type) (V(http), V(tcp), V(redis),
        V(process), ...), and run by the same probe engine.
      - Skipped in check mode.
    type: dict
    suboptions:
      probes:
        description:
          - Probe definitions as M(aitbc.ops.health) takes them; C(type) is required in each.
        type: list
        elements: dict
        required: true
      timeout:
        description: Seconds to wait for all probes to pass.
        type: float
        default: 30
      interval:
        description: Seconds between polls.
        type: float
        default: 1.0
notes:
  - The V(process) backend needs Linux C(/proc). The daemon runs in its own session and holds no descriptor
    of the module, so it outlives the module and the SSH channel, and Ansible does not wait for it.
  - V(supervisor), V(systemd), V(docker) and V(sysv) act on services already defined on the host; they do
    not create units, programs or containers. O(stop_timeout) and O(settle) do not apply to
    V(supervisor) and V(systemd), which use their own settings.
  - RV(service.uptime_s) comes from C(/proc/PID/stat) for V(process) and V(sysv), from
    C(ActiveEnterTimestampMonotonic) for V(systemd), from the status line for V(supervisor) and from
    C(State.StartedAt) for V(docker).
seealso:
  - module: ansible.builtin.service
  - module: ansible.builtin.systemd_service
"""

EXAMPLES = r"""
- name: Start the coordinator API from the service catalogue
  # aitbc_services: the catalogue of the inventory (inventory/group_vars/all/aitbc.yml)
  aitbc.ops.service:
    name: coordinator-api
    state: started
    backend: process
    command: "{{ aitbc_services['coordinator-api'].command }}"
    pidfile: "{{ aitbc_services['coordinator-api'].pidfile }}"
    log_file: "{{ aitbc_services['coordinator-api'].log_file }}"
    env: "{{ aitbc_services['coordinator-api'].env }}"
    wait_healthy:
      probes:
        - name: coordinator health
          type: http
          url: "{{ aitbc_services['coordinator-api'].url }}/health"
      timeout: 30

- name: Restart a supervisord program
  aitbc.ops.service:
    name: wallet-daemon
    state: restarted
    backend: supervisor
    supervisor_config: /etc/supervisor/supervisord.conf

- name: Stop a service, whichever manager runs it (backend detected)
  aitbc.ops.service:
    name: blockchain-node
    state: stopped

- name: Query a container on a rootless Docker daemon
  aitbc.ops.service:
    name: redis
    container: aitbc-redis
    backend: docker
    docker_host: unix:///run/user/1000/docker.sock
  register: redis_status

- name: Show whether it runs
  ansible.builtin.debug:
    msg: "{{ redis_status.service.active }}"
"""

RETURN = r"""
service:
  description: State of the service after the task (before it, in check mode).
  returned: always
  type: dict
  contains:
    name:
      description: The service name.
      type: str
      sample: coordinator-api
    backend:
      description: The backend used (the detected one for O(backend=auto)).
      type: str
      sample: process
    active:
      description: Whether the service is running.
      type: bool
      sample: true
    pid:
      description: Main pid, when running and known.
      type: int
      sample: 4242
    uptime_s:
      description: Seconds since the service (its main process) started, when running and known.
      type: float
      sample: 12.5
    detail:
      description: The backend's own state words (V(running), V(active/running),
        V(FATAL Exited too quickly), ...), why a pidfile is stale, or that the daemon runs an
        earlier command, and (with O(port)) V(port N held by pid M (comm\), not the service).
      type: str
      sample: running
    port_held_by:
      description: With O(port) and O(backend=process), the process that holds the port and is not the
        service (pid null when this user cannot see its owner).
      type: dict
      returned: when a stranger holds O(port)
      sample: {"pid": 4242, "comm": "nginx"}
    restarts:
      description: With O(backend=systemd), how often systemd restarted the unit by itself (its
        C(Restart=) setting, property C(NRestarts)). Above 0, systemd repaired a crash, and the task warns
        that the unit was restarted by systemd N time(s), with the last failure's result.
      type: int
      returned: with O(backend=systemd) (null on systemd older than 235)
      sample: 1
    result:
      description: With O(backend=systemd), the unit's C(Result) property, how it last stopped or failed
        (V(success), V(signal), V(exit-code), V(start-limit-hit), ...).
      type: str
      returned: with O(backend=systemd)
      sample: success
    active_since:
      description: With O(backend=systemd), when the unit last became active (C(ActiveEnterTimestamp)), an
        ISO 8601 UTC time; null when it is not running.
      type: str
      returned: with O(backend=systemd)
      sample: "2026-12-04T19:16:16Z"
msg:
  description: One line saying what was done or would be done.
  returned: always
  type: str
  sample: coordinator-api started
probes:
  description: Last results of the O(wait_healthy) probes.
  returned: when O(wait_healthy) is set and the probes ran
  type: list
  elements: dict
  sample: [{"name": "coordinator health", "ok": true, "detail": "HTTP 200"}]
log_tail:
  description: Last lines of the service log, when starting or becoming healthy failed.
  returned: failure
  type: list
  elements: str
  sample: ["Traceback (most recent call last):", "OSError: [Errno 98] Address already in use"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils.service.spec import ServiceError
from ansible_collections.aitbc.ops.plugins.module_utils.service_manage import manage_service, redacted_params


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(
            type="str", default="status", choices=["started", "stopped", "restarted", "reloaded", "status"]
        ),
        backend=dict(
            type="str", default="auto", choices=["auto", "process", "systemd", "supervisor", "docker", "sysv"]
        ),
        command=dict(type="str"),
        pidfile=dict(type="path"),
        log_file=dict(type="path"),
        chdir=dict(type="path"),
        env=dict(type="dict", no_log=False),
        env_file=dict(type="path"),
        stop_timeout=dict(type="float", default=10.0),
        settle=dict(type="float", aliases=["start_timeout"]),
        port=dict(type="int"),
        unit=dict(type="str"),
        container=dict(type="str"),
        program=dict(type="str"),
        supervisor_config=dict(type="path"),
        docker_host=dict(type="str"),
        wait_healthy=dict(
            type="dict",
            options=dict(
                probes=dict(type="list", elements="dict", required=True),
                timeout=dict(type="float", default=30.0),
                interval=dict(type="float", default=1.0),
            ),
        ),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    invocation = {"module_args": redacted_params(module.params)}
    try:
        result = manage_service(module.params, check_mode=module.check_mode, diff=module._diff)
    except ServiceError as exc:
        details = dict(exc.details)
        details.setdefault("changed", False)
        module.fail_json(msg=exc.msg, invocation=invocation, **details)
    module.exit_json(invocation=invocation, **result)


if __name__ == "__main__":
    main()
