# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: memory
type: notification
short_description: Record plain ansible-playbook runs in the ai-memory store
description:
  - Writes one entry per playbook run to C(daily/YYYY-MM-DD.md) in the ai-memory store, the same entry
    C(opsrunner run) writes for the same run, because both use the one recorder of the C(opsrunner) package.
  - Secret values are masked before anything is written - values that came from ansible-vault, results of
    C(no_log) tasks, and values of variables and environment variables whose names look secret
    (C(*_KEY), C(*_TOKEN), C(*SECRET*), C(*PASSWORD*), C(*_API_KEYS)).
  - Stays silent inside runs started by C(opsrunner), which records them itself.
version_added: 0.1.0
author:
  - aitbc-ops developers (@aitbc-ops)
requirements:
  - the C(opsrunner) Python package (the recorder); it ships at the root of this collection and is used
    from there when not installed
  - filelock and PyYAML on the controller, and apprise for the heartbeat's alerts (all in the collection's
    C(requirements.txt))
  - enable it with C(callbacks_enabled = aitbc.ops.memory) in ansible.cfg
options:
  memory_dir:
    description:
      - Root of the memory store.
      - When unset, C(./ai-memory) relative to the working directory.
    type: path
    env:
      - name: OPSRUNNER_MEMORY_DIR
    ini:
      - section: callback_aitbc_memory
        key: memory_dir
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# callbacks_enabled = aitbc.ops.memory
#
# [callback_aitbc_memory]
# memory_dir = /var/lib/aitbc-ops/ai-memory
"""

import os

from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible_collections.aitbc.ops.plugins.plugin_utils.recorder import ensure_opsrunner

ensure_opsrunner()
try:
    from opsrunner.ansible_secrets import host_secrets, redactor_for_environment
    from opsrunner.hooks import install_hooks, playbook_event
    from opsrunner.memory import MemoryStore
    from opsrunner.recorder import RUN_ID_ENV, Recorder

    HAS_OPSRUNNER = True
except ImportError:
    HAS_OPSRUNNER = False


class CallbackModule(CallbackBase):
    """Adapter: builds ansible-runner-shaped events from callback hooks and feeds the Recorder."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "aitbc.ops.memory"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self.recorder = None
        self.disabled = bool(os.environ.get("OPSRUNNER_RUN_ID")) if HAS_OPSRUNNER else True
        if not HAS_OPSRUNNER:
            self._display.warning("aitbc.ops.memory: the opsrunner package is not importable; not recording")

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        if self.disabled or os.environ.get(RUN_ID_ENV):
            self.disabled = True
            return
        store = MemoryStore(self.get_option("memory_dir"))
        self.recorder = Recorder(store, redactor_for_environment(), source="ansible-playbook")

    def _feed(self, name, **event_data):
        if self.recorder is not None:
            self.recorder.handle({"event": name, "event_data": event_data})

    def _feed_result(self, name, result, **extra):
        self._feed(
            name,
            host=result._host.get_name(),
            task=result._task.get_name(),
            task_action=result._task.action,
            res=result._result,
            **extra,
        )

    def v2_playbook_on_start(self, playbook):
        if self.recorder is not None:
            # The hooks opsrunner gives a run of this playbook's event (the one table in opsrunner/hooks.py),
            # and the watchers for heartbeat probes and log reviews that any playbook may hold.
            install_hooks(self.recorder, playbook_event(playbook._file_name), watch=True)
        self._feed("playbook_on_start", playbook=playbook._file_name)

    def v2_playbook_on_play_start(self, play):
        if self.recorder is None:
            return
        manager = play.get_variable_manager()
        loader = play.get_loader()
        inventory = getattr(manager, "_inventory", None)
        if inventory is not None:
            for host in inventory.get_hosts(play.hosts):
                self.recorder.redactor.add(host_secrets(manager, loader, play, host, self.recorder.context))
        if play.check_mode or context.CLIARGS.get("check"):
            self.recorder.record.check_mode = True
        self._feed("playbook_on_play_start", play=play.get_name(), pattern=play.hosts)

    def v2_runner_on_start(self, host, task):
        self._feed("runner_on_start", host=host.get_name(), task=task.get_name(), task_action=task.action)

    def v2_runner_on_ok(self, result):
        self._feed_result("runner_on_ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._feed_result("runner_on_failed", result, ignore_errors=ignore_errors)

    def v2_runner_on_unreachable(self, result):
        self._feed_result("runner_on_unreachable", result)

    def v2_runner_on_skipped(self, result):
        self._feed_result("runner_on_skipped", result)

    def v2_playbook_on_stats(self, stats):
        self._feed(
            "playbook_on_stats",
            ok=dict(stats.ok),
            changed=dict(stats.changed),
            failures=dict(stats.failures),
            dark=dict(stats.dark),
            skipped=dict(stats.skipped),
            rescued=dict(stats.rescued),
            ignored=dict(stats.ignored),
            processed=dict(stats.processed),
        )
        if self.recorder is not None:
            self.recorder.finish(rc=0)
