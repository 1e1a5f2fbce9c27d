#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# fmt: off
DOCUMENTATION = r'''
---
module: decision
short_description: Record why a change is made, as a decision record in the ai-memory store
version_added: 0.1.0
description:
  - States a decision - a deploy, rollback, restore, devnet reset or config change, and why - in a playbook.
  - An action that runs on the controller only. It connects to no host, runs nothing remotely, changes
    nothing, and returns the validated fields in RV(decision).
  - The recorder of the run (C(opsrunner run), or the C(aitbc.ops.memory) callback under plain
    C(ansible-playbook)) writes one Markdown record per host and task to
    C(decisions/YYYY-MM-DD-HHMMSS-<kind>-<slug>.md) of the memory store when the run ends, with the
    date, the host, the run id and the fields below, and names the file in the run's daily entry.
    Without such a recorder the task only returns the fields.
  - Secret values are masked before the record is written, as everywhere in the memory store.
author:
  - aitbc-ops developers (@aitbc-ops)
extends_documentation_fragment:
  - aitbc.ops.attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Returns the same result; the recorder writes no record in check mode.
  diff_mode:
    support: none
    details: Nothing changes; the fields come back in RV(decision) and become a record when the run ends.
  platform:
    support: full
    platforms: all
    details: Runs on the controller whatever the delegation; the record names the task's inventory host.
options:
  decision:
    description:
      - What was decided, in one line. The title of the record and part of its file name.
    type: str
    required: true
  kind:
    description:
      - What sort of change, in lowercase letters, digits and C(-) (for example V(deploy), V(rollback),
        V(restore), V(devnet-reset), V(config)). Part of the record's file name.
    type: str
    required: true
  context:
    description:
      - The situation that called for the decision. May span several lines.
    type: str
    default: ''
  rationale:
    description:
      - Why this option was chosen. May span several lines.
    type: str
    default: ''
  impact:
    description:
      - What changes for the services and their users. May span several lines.
    type: str
    default: ''
  outcome:
    description:
      - How the change went, in one word or a few (for example V(ok), V(failed), V(rolled back)).
    type: str
    default: ok
  details:
    description:
      - Further facts, one line each (versions, backup set names, checksums).
    type: list
    elements: str
    default: []
notes:
  - The record is written by the recorder when the run ends, so it is not written when the run is not
    recorded (the C(aitbc.ops.memory) callback not enabled, and not run by C(opsrunner)).
  - The recorder keeps the results of tasks written with the full name C(aitbc.ops.decision).
seealso:
  - module: aitbc.ops.service
'''

EXAMPLES = r'''
- name: Record why the wallet database is restored
  aitbc.ops.decision:
    decision: Restore the wallet database from last night's backup
    kind: restore
    context: |
      The wallet daemon reports a corrupt ledger after the disk filled up at 03:10.
    rationale: The backup is 6 hours old and verified; replaying the chain takes 2 days.
    impact: Wallet operations stop for about 5 minutes; transactions after 00:00 are replayed.
    details:
      - "backup set: 2026-11-23T000000Z"

- name: Record a deploy with its outcome
  aitbc.ops.decision:
    decision: "Deploy coordinator-api {{ version }}"
    kind: deploy
    rationale: Fixes the job queue leak
    outcome: "{{ 'ok' if deploy_result is succeeded else 'failed' }}"
'''

RETURN = r'''
decision:
  description: The validated fields, as the recorder writes them.
  returned: success
  type: dict
  contains:
    decision:
      description: The title of the decision.
      type: str
      sample: Restore the wallet database from last night's backup
    kind:
      description: What sort of change.
      type: str
      sample: restore
    context:
      description: The situation that called for the decision.
      type: str
      sample: The wallet daemon reports a corrupt ledger.
    rationale:
      description: Why this option was chosen.
      type: str
      sample: The backup is 6 hours old and verified.
    impact:
      description: What changes for the services and their users.
      type: str
      sample: Wallet operations stop for about 5 minutes.
    outcome:
      description: How the change went.
      type: str
      sample: ok
    details:
      description: Further facts, one line each.
      type: list
      elements: str
      sample: ["backup set: 2026-11-23T000000Z"]
'''
# fmt: on

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aitbc.ops.plugins.module_utils.decision import ARGUMENT_SPEC


def main() -> None:
    # The action plugin does the work on the controller. This only runs when the module was sent to a host
    # without its action plugin; the options are declared so that they are checked like the documentation.
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    module.fail_json(
        msg="aitbc.ops.decision runs on the controller only (an action plugin); it cannot run on a host"
    )


if __name__ == "__main__":
    main()
