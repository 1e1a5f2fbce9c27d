"""Recorder hooks that every run gets, under opsrunner and under the memory callback alike.

Commands add their own hooks (heartbeat, log review) through the runner's `prepare`; these are the
capabilities whose results mean the same whatever playbook produced them.
"""

from __future__ import annotations

from .backups import BackupHooks
from .decisions import decision_hooks
from .deploys import DeployHooks
from .recorder import Recorder


def standard_hooks(recorder: Recorder) -> None:
    decision_hooks(recorder)  # decisions/ records from aitbc.ops.decision tasks
    BackupHooks(recorder)  # backup details; incidents for failed verification
    DeployHooks(recorder)  # incidents for automatic rollbacks
