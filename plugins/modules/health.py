#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# fmt: off
DOCUMENTATION = r'''
---
module: health
short_description: Run health probes (HTTP, TCP, Redis, process, disk, memory, load, metric, security)
version_added: 0.1.0
description:
  - Runs every probe of one host in a single module call. The probes run concurrently, each against
    its own deadline (O(probes[].timeout)), so the task takes about as long as the slowest probe,
    not the sum of all probes.
  - Each probe reports C(ok), a short human C(detail) and its latency. The task fails when a probe
    fails, unless O(fail_on_unhealthy=false), in which case it succeeds and returns RV(healthy=false).
  - Probes only read, so they also run in check mode. (A C(metric) probe with O(probes[].increased) keeps
    its last value in a small state file, in check mode too.)
  - Each result has a C(category) - V(security) for the C(listeners), C(file_mode) and C(auth_failures)
    probes, V(ops) for the others - so that a consumer (the heartbeat) can page a human at once for a
    security finding instead of restarting something.
  - Needs only the Python standard library on the managed host, except for C(metric) probes (see
    the requirements). The C(process) and C(memory) probes
    read C(/proc), so they need Linux, as does C(listeners) (C(/proc/net/tcp) and C(/proc/net/tcp6)).
author:
  - aitbc-ops developers (@aitbc-ops)
requirements:
  - For C(metric) probes only, the Python package C(prometheus_client) on the managed host
    (C(pip install prometheus-client), or the Debian package C(python3-prometheus-client)). Without it a
    C(metric) probe fails with a detail that names the package; the other probes are not affected.
extends_documentation_fragment:
  - aitbc.ops.attributes
  - aitbc.ops.attributes.posix
  - aitbc.ops.attributes.info_module
attributes:
  check_mode:
    details: Probes are read-only and run in check mode too.
options:
  probes:
    description:
      - The probes to run. Results come back in the same order.
      - Options that do not belong to a probe's O(probes[].type) are rejected, as are unknown types,
        with one message that names the probe.
    type: list
    elements: dict
    required: true
    suboptions:
      type:
        description:
          - The probe type. Required.
          - V(http) requests O(probes[].url) and checks the status code, and optionally JSON fields,
            body text, latency and the TLS certificate lifetime.
          - V(tcp) connects to O(probes[].host):O(probes[].port).
          - V(redis) sends C(PING) (after C(AUTH) when O(probes[].password) is set) and expects C(+PONG).
          - V(process) checks the pid in O(probes[].pidfile), or looks for O(probes[].process).
          - V(disk) checks the free space of the filesystems that hold O(probes[].path) and O(probes[].paths).
          - V(memory) checks C(MemAvailable) from C(/proc/meminfo).
          - V(load) checks the 1-minute load average divided by the number of CPUs.
          - V(backup) checks that the newest verified backup set in O(probes[].backup_dir) (sets written by
            M(aitbc.ops.backup), verified by M(aitbc.ops.backup_verify)) is younger than
            O(probes[].max_age_hours).
          - V(service) asks the service's backend (O(probes[].backend)) for its read-only status, as
            M(aitbc.ops.service) V(state=status) does. It is healthy when the service itself runs (for
            V(process), its pidfile names a live process running O(probes[].command); for V(systemd), the unit
            is active) and no other process holds O(probes[].port). An orphan answering on the port fails it
            with C(port N held by pid M (comm\), not the service). Needs O(probes[].service). With
            V(systemd), RV(results[].data) holds C(restarts) (C(NRestarts)), C(result), C(crash_result) (the
            journal's last failure result once systemd restarted the unit) and C(active_since).
          - V(metric) reads a Prometheus text endpoint (O(probes[].url), fetched as V(http) fetches, status
            200 expected, at most 1 MiB), selects the sample O(probes[].metric) with O(probes[].metric_labels)
            and checks O(probes[].min), O(probes[].max) and O(probes[].increased). With none of them it checks
            that the sample exists. RV(results[].data) has C(value) and C(labels).
          - V(listeners) (category V(security)) lists the host's listening TCP sockets (IPv4 and IPv6) and
            fails when one is on a port outside O(probes[].allowed_ports), naming its address, port and
            process (from C(/proc/PID/fd), where readable). Only sockets reachable from outside count (bound
            to a wildcard or non-loopback address) unless O(probes[].include_loopback=true). It sees the
            network namespace the module runs in.
          - V(file_mode) (category V(security)) fails when a path of O(probes[].paths), or anything under a
            folder among them, is open to group or others (key material must be at most 0600, its folders
            0700). Symbolic links inside folders are not followed; at most 10000 entries are looked at.
          - V(auth_failures) (category V(security)) counts sshd's C(Failed password), C(Invalid user) and
            C(authentication failure) lines in the auth log O(probes[].path) whose syslog timestamps (classic
            C(Dec  4 22:59:50), local time, or RFC 3339) fall within the last O(probes[].window) seconds, and
            fails when there are more than O(probes[].max_failures). Only the log's last MiB is read. A host
            without the log passes (C(no auth log)).
        type: str
      name:
        description:
          - Name of the probe, unique within the task. It appears in RV(results[].name) and
            RV(failed_probes).
          - Defaults to the type and its target, for example V(http:http://127.0.0.1:8000/health),
            V(tcp:127.0.0.1:8545), V(redis:127.0.0.1:6379), V(process:/run/app.pid), V(disk:/),
            V(memory), V(load), V(listeners), V(file_mode) or V(auth_failures:/var/log/auth.log).
        type: str
      service:
        description:
          - The service this probe belongs to. Returned as is in RV(results[].service).
          - For O(probes[].type=service), required, the name of the service to check.
        type: str
      timeout:
        description:
          - Seconds the probe may take in total (connect, TLS, request and response). A probe that
            runs out of time fails with C(timed out after N s).
        type: float
        default: 5
      url:
        description:
          - For O(probes[].type=http) and O(probes[].type=metric), required. An V(http://) or V(https://) URL.
          - Credentials in the URL (C(https://user:pass@host/)) are sent as basic authentication and
            left out of the default probe name.
          - Redirects are not followed and proxy environment variables are not used.
        type: str
      method:
        description:
          - For O(probes[].type=http). The HTTP method.
        type: str
        default: GET
      status:
        description:
          - For O(probes[].type=http). The status codes that count as healthy.
        type: list
        elements: int
        default: [200]
      json:
        description:
          - For O(probes[].type=http). Conditions on the JSON response body, all of which must hold.
          - Each is C(PATH OP VALUE) or C(PATH exists). C(PATH) is dotted (V(a.b.c)); a number indexes
            a list (V(items.0.name)). C(OP) is one of C(==), C(!=), C(>), C(>=), C(<), C(<=),
            C(contains) (list item, substring or object key) and C(exists).
          - Numbers compare as numbers, V(true)/V(false) and V(null) match JSON booleans and null.
            Quote C(VALUE) to compare as a string or to keep spaces.
          - Examples are V(status == ok), V(supported_chains contains ait-devnet), V(height > 0).
          - Only the first 1 MiB of the body is read.
        type: list
        elements: str
      body_contains:
        description:
          - For O(probes[].type=http). Text that the response body must contain.
        type: str
      max_latency_ms:
        description:
          - For O(probes[].type=http). The probe fails when the full response takes longer than this
            many milliseconds.
        type: float
      tls_min_days:
        description:
          - For O(probes[].type=http) with an V(https://) URL. The probe fails when the server
            certificate expires in fewer days than this. Works with O(probes[].validate_certs=false) too.
        type: int
      validate_certs:
        description:
          - For O(probes[].type=http) and O(probes[].type=metric). Whether to verify the server certificate
            against the system CA store and the host name.
        type: bool
        default: true
      headers:
        description:
          - For O(probes[].type=http) and O(probes[].type=metric). Extra request headers.
        type: dict
      metric:
        description:
          - For O(probes[].type=metric), required. The sample's name as the text shows it (a counter's
            V(aitbc_blocks_total), a histogram's V(request_seconds_bucket)).
          - Exactly one sample must match, else the probe fails and says how many did.
        type: str
      metric_labels:
        description:
          - For O(probes[].type=metric). Label values the sample must have, label name to value (for example
            the label C(job) with the value V(node)). Other labels of the sample are not compared.
        type: dict
      min:
        description:
          - For O(probes[].type=metric). The value must be at least this.
        type: float
      max:
        description:
          - For O(probes[].type=metric). The value must be at most this.
        type: float
      increased:
        description:
          - For O(probes[].type=metric). The value must be higher than at the previous check of this probe
            (a chain height that stops growing, a counter that stops counting).
          - The previous value is kept on the host in a small JSON file (0600) in O(probes[].state_dir), one
            per probe; it is written in check mode too. No file, or one that cannot be read, is a first
            sight, which passes with C(baseline). A value lower than before (an exporter restarted, a chain
            re-created) is a reset, which passes and becomes the new baseline.
          - RV(results[].data) then also has C(previous) and C(previous_age_s).
        type: bool
        default: false
      increased_within:
        description:
          - For O(probes[].type=metric) with O(probes[].increased=true). An unchanged value still passes while
            its last rise is at most this many seconds old, so that a re-check soon after the previous one
            (after a restart) does not fail. V(0) means it must be higher than at the previous check.
        type: float
        default: 0
      state_dir:
        description:
          - For O(probes[].type=metric) with O(probes[].increased=true). The folder of the previous values,
            created with mode 0700 when missing. Defaults to C(~/.cache/aitbc-ops/probe-state) of the user the
            module runs as; the AITBC catalogue uses C(<aitbc_root>/probe-state).
        type: path
      host:
        description:
          - For O(probes[].type=tcp) and O(probes[].type=redis). Host name or address to connect to.
        type: str
        default: 127.0.0.1
      port:
        description:
          - For O(probes[].type=tcp), required. For O(probes[].type=redis), defaults to V(6379).
          - For O(probes[].type=service), the port the service listens on; a process that is not the
            service holding it fails the probe.
        type: int
      password:
        description:
          - For O(probes[].type=redis). Password sent with C(AUTH) before C(PING).
        type: str
      pidfile:
        description:
          - For O(probes[].type=process). File holding the pid. The probe fails when the file is
            missing, the process is gone (stale pidfile) or it is a zombie.
          - Give exactly one of O(probes[].pidfile) and O(probes[].process).
          - For O(probes[].type=service), the pidfile of a V(process) service (the same as
            M(aitbc.ops.service)'s O(aitbc.ops.service#module:pidfile)).
        type: path
      process:
        description:
          - For O(probes[].type=process). Healthy when a live process has this exact C(comm) name or
            this text anywhere in its command line. The module's own process and its parents are
            not counted.
          - Give exactly one of O(probes[].pidfile) and O(probes[].process).
        type: str
      path:
        description:
          - For O(probes[].type=disk), a path on the filesystem to check; defaults to V(/).
            A path that does not exist (yet) is checked on the filesystem of its nearest existing parent,
            as C(df) would, and the detail says so.
          - For O(probes[].type=auth_failures), the auth log; defaults to V(/var/log/auth.log).
        type: path
      paths:
        description:
          - For O(probes[].type=disk). More paths to check besides O(probes[].path), each on its own
            filesystem; paths on the same filesystem are checked once. The probe fails when any of those
            filesystems is below the minimum; RV(results[].data) has C(filesystems), one entry per
            filesystem, and the free space of the fullest one.
          - For O(probes[].type=file_mode). The key files and folders to check. A missing one passes unless
            O(probes[].required=true); none at all passes (C(no key files to check)).
        type: list
        elements: path
      min_free_percent:
        description:
          - For O(probes[].type=disk). Minimum free space, in percent of the filesystem size (space
            available to unprivileged users).
          - A disk probe needs O(probes[].min_free_percent), O(probes[].min_free_bytes) or both.
        type: float
      min_free_bytes:
        description:
          - For O(probes[].type=disk). Minimum free space in bytes. Accepts units, for example V(512M)
            or V(5G) (powers of 1024).
        type: bytes
      min_available_percent:
        description:
          - For O(probes[].type=memory), required. Minimum C(MemAvailable), in percent of C(MemTotal).
        type: float
      max_load_per_cpu:
        description:
          - For O(probes[].type=load), required. Maximum 1-minute load average per CPU.
        type: float
      backup_dir:
        description:
          - For O(probes[].type=backup), required. The host's folder of backup sets, C(<root>/<host>).
        type: path
      max_age_hours:
        description:
          - For O(probes[].type=backup), required. The newest verified set may be at most this old.
        type: float
      backend:
        description:
          - For O(probes[].type=service). The service backend, as in M(aitbc.ops.service).
        type: str
        default: auto
      unit:
        description:
          - For O(probes[].type=service). The systemd unit (defaults to the service name plus C(.service)).
        type: str
      container:
        description:
          - For O(probes[].type=service). The docker container (defaults to the service name).
        type: str
      program:
        description:
          - For O(probes[].type=service). The supervisor program (defaults to the service name).
        type: str
      command:
        description:
          - For O(probes[].type=service). The command of a V(process) service, to tell it from an unrelated
            process that reused its pidfile's pid.
        type: str
      allowed_ports:
        description:
          - For O(probes[].type=listeners). The ports that may listen - the host's services' own ports and
            whatever else belongs there (C(22) for sshd).
        type: list
        elements: int
        default: [22]
      include_loopback:
        description:
          - For O(probes[].type=listeners). Count sockets bound to loopback addresses only (C(127.0.0.0/8),
            C(::1)) too. By default only those reachable from outside count.
        type: bool
        default: false
      required:
        description:
          - For O(probes[].type=file_mode). A path of O(probes[].paths) that does not exist fails the probe.
        type: bool
        default: false
      window:
        description:
          - For O(probes[].type=auth_failures). Seconds back from now whose failed logins count.
        type: int
        default: 600
      max_failures:
        description:
          - For O(probes[].type=auth_failures). More failed logins than this within O(probes[].window) fail
            the probe.
        type: int
        default: 20
  fail_on_unhealthy:
    description:
      - Fail the task when any probe fails.
      - With V(false) the task succeeds and reports RV(healthy=false), for callers that act on the
        result themselves (heartbeats, remediation).
    type: bool
    default: true
  labels:
    description:
      - Free-form labels returned unchanged as RV(labels), for whatever consumes the results.
      - The heartbeat role uses them to carry its thresholds to the recorder.
    type: dict
    default: {}
notes:
  - The task never reports a change.
  - All probes of a task start together, so keep the number of probes per task reasonable (at most
    64 run at once).
seealso:
  - name: RESP protocol
    description: The Redis wire protocol that the redis probe speaks.
    link: https://redis.io/docs/latest/develop/reference/protocol-spec/
'''

EXAMPLES = r'''
- name: Check the AITBC stack
  aitbc.ops.health:
    probes:
      - type: http
        service: coordinator
        url: http://127.0.0.1:8000/health
        json:
          - status == ok
      - type: http
        service: blockchain-node
        url: http://127.0.0.1:8545/rpc/head
        timeout: 3
        json:
          - height > 0
          - chain_id == ait-devnet
        max_latency_ms: 500
      - type: redis
        service: redis
        port: 6379
        password: "{{ redis_password }}"
      - type: process
        service: wallet-daemon
        pidfile: /run/aitbc/wallet.pid
      - type: disk
        path: /
        paths: [/var/lib/aitbc, /var/backups/aitbc]
        min_free_percent: 10
        min_free_bytes: 2G
      - type: memory
        min_available_percent: 10
      - type: load
        max_load_per_cpu: 4
      - type: metric
        name: chain height increased
        service: blockchain-rpc
        url: http://127.0.0.1:8545/metrics
        metric: aitbc_chain_height
        increased: true
        increased_within: 60
        state_dir: /var/lib/aitbc/probe-state

- name: Security checks of the host (their results have category security)
  aitbc.ops.health:
    probes:
      - type: listeners
        allowed_ports: [22, 18011, 18012, 18013, 16379]
      - type: file_mode
        paths: [/var/lib/aitbc/data/wallet/keystore]
      - type: auth_failures
        window: 600
        max_failures: 20

- name: Heartbeat - report instead of failing
  aitbc.ops.health:
    fail_on_unhealthy: false
    probes:
      - name: api
        type: http
        url: https://api.example.org/health
        tls_min_days: 14
        status: [200, 204]
      - type: tcp
        host: db.internal
        port: 5432
  register: health

- name: Show what failed
  ansible.builtin.debug:
    msg: "{{ health.results | rejectattr('ok') | map(attribute='detail') | list }}"
  when: not health.healthy
'''

RETURN = r'''
healthy:
  description: Whether every probe passed.
  returned: success and when a probe failed
  type: bool
  sample: false
failed_probes:
  description: Names of the probes that failed, in probe order.
  returned: success and when a probe failed
  type: list
  elements: str
  sample: ["redis:127.0.0.1:6379"]
msg:
  description: A one-line summary; it lists each failed probe with its detail.
  returned: always
  type: str
  sample: "1 of 3 probes failed: redis:127.0.0.1:6379 (connection refused)"
labels:
  description: The O(labels) given.
  returned: always
  type: dict
  sample: {"heartbeat": "check"}
results:
  description: One entry per probe, in the order of O(probes).
  returned: success and when a probe failed
  type: list
  elements: dict
  contains:
    name:
      description: The probe name (O(probes[].name) or the derived default).
      type: str
      sample: http:http://127.0.0.1:8000/health
    type:
      description: The probe type.
      type: str
      sample: http
    service:
      description: The O(probes[].service) given, or V(null).
      type: str
      sample: coordinator
    target:
      description:
        - What was probed - the URL, V(host:port), pidfile, process name or path.
        - Empty for memory and load probes.
      type: str
      sample: http://127.0.0.1:8000/health
    ok:
      description: Whether the probe passed.
      type: bool
      sample: true
    detail:
      description: Short human text on what was measured or what went wrong.
      type: str
      sample: "200 in 12 ms; status == ok"
    latency_ms:
      description: How long the probe took, in milliseconds.
      type: float
      sample: 12.4
    data:
      description:
        - Measured values, depending on the type. V(http) has C(status), C(bytes) and C(tls_days_left);
          V(process) C(pid), or C(pids) and C(count); V(disk) C(free_bytes), C(total_bytes) and
          C(free_percent) of its fullest filesystem and C(filesystems); V(memory) C(available_bytes),
          C(total_bytes) and C(available_percent);
          V(load) C(load), C(cpus) and C(load_per_cpu);
          V(metric) C(status), C(bytes), C(value) and C(labels), with O(probes[].increased) also C(previous)
          and C(previous_age_s);
          V(listeners) C(listening), C(allowed_ports) and C(unexpected) (C(address), C(port), C(pid),
          C(process)); V(file_mode) C(checked), C(missing), C(too_open) (C(path), C(mode)) and C(truncated);
          V(auth_failures) C(failures), C(window), C(bytes_read) and C(sources) (the most frequent addresses).
          Empty when the probe failed before measuring.
      type: dict
      sample: {"status": 200, "bytes": 64}
    category:
      description: What a failure is about - V(security) for the security probes, V(ops) for the others.
      type: str
      sample: ops
'''
# fmt: on

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils.probes.base import ProbeConfigError
from ansible_collections.aitbc.ops.plugins.module_utils.probes.registry import argument_spec, check_health


def main():
    module = AnsibleModule(
        argument_spec=dict(
            probes=dict(type="list", elements="dict", required=True, options=argument_spec()),
            fail_on_unhealthy=dict(type="bool", default=True),
            labels=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    try:
        report = check_health(module.params["probes"])
    except ProbeConfigError as exc:
        module.fail_json(msg=str(exc), changed=False)
    report["labels"] = module.params["labels"]
    if not report["healthy"] and module.params["fail_on_unhealthy"]:
        module.fail_json(changed=False, **report)
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
