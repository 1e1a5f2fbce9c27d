# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: heartbeat_plan
short_description: Which failing services the heartbeat may restart now
description:
  - Reads the heartbeat state kept in the ai-memory store on the controller and returns the services of
    one host that should be restarted now - those whose probes have failed for long enough to open an
    incident (the failure threshold), and whose restarts within the last heartbeats stay under the budget.
  - The recorder applies the same thresholds when it opens, escalates and resolves incidents.
version_added: 0.1.0
author:
  - aitbc-ops developers (@aitbc-ops)
options:
  _terms:
    description: The failing probe results of the host (dicts with C(name) and C(service)).
    type: list
    elements: dict
    required: true
  host:
    description: The inventory host the probes belong to.
    type: str
    required: true
  failure_threshold:
    description: Consecutive failed heartbeats before an incident opens (and a restart is allowed).
    type: int
    default: 2
  max_restarts:
    description: Restarts of one service allowed within O(restart_window) heartbeats.
    type: int
    default: 3
  restart_window:
    description: The number of heartbeats the restart budget covers.
    type: int
    default: 6
  remediate:
    description: With V(false), nothing is ever restarted.
    type: bool
    default: true
  scope:
    description:
      - The services a scoped assessment (the intake's) covers; empty for a heartbeat of everything.
      - A scoped run shares the heartbeats' restart budget but does not count as a heartbeat.
    type: list
    elements: str
    default: []
  memory_dir:
    description:
      - Root of the memory store; the same resolution as opsrunner and the memory callback.
      - C(opsrunner) sets E(OPSRUNNER_MEMORY_DIR) to its C(--memory-dir) for the runs it starts, so its
        incidents and this lookup share one store whatever the working directory is.
      - When unset, C(./ai-memory) relative to the working directory.
      - The ini entry is the memory callback's, so a plain C(ansible-playbook) run configured there
        reads the store the callback writes.
    type: path
    env:
      - name: OPSRUNNER_MEMORY_DIR
    ini:
      - section: callback_aitbc_memory
        key: memory_dir
"""

EXAMPLES = r"""
- name: Plan restarts
  ansible.builtin.set_fact:
    heartbeat_restarts: >-
      {{ lookup('aitbc.ops.heartbeat_plan', failing, host=inventory_hostname, wantlist=True) }}
"""

RETURN = r"""
_raw:
  description: Names of the services to restart now, in probe order.
  type: list
  elements: str
"""

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible_collections.aitbc.ops.plugins.plugin_utils.recorder import ensure_opsrunner


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if not ensure_opsrunner():
            raise AnsibleError(
                "aitbc.ops.heartbeat_plan needs the opsrunner package (shipped in this collection)"
            )
        from opsrunner.heartbeat import HeartbeatConfig, SettingsError, restart_plan
        from opsrunner.memory import MemoryStore

        failing = [t for term in terms for t in (term if isinstance(term, list) else [term])]
        try:
            config = HeartbeatConfig(
                failure_threshold=self.get_option("failure_threshold"),
                max_restarts=self.get_option("max_restarts"),
                restart_window=self.get_option("restart_window"),
                remediate=self.get_option("remediate"),
                scope=self.get_option("scope"),
            )
        except SettingsError as exc:
            raise AnsibleError(str(exc)) from exc
        store = MemoryStore(self.get_option("memory_dir"))
        return restart_plan(store, self.get_option("host"), failing, config)
