# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `attributes` every aitbc.ops module documents, in one place (after community.general's fragment).

A module lists `aitbc.ops.attributes` (the descriptions) and the variants that fit it:

    extends_documentation_fragment:
      - aitbc.ops.attributes
      - aitbc.ops.attributes.posix        # runs on a POSIX managed host
      - aitbc.ops.attributes.info_module  # only reads: full check mode, nothing to diff
      - aitbc.ops.attributes.diff         # reports before and after with --diff

and states in its own `attributes:` only what is particular to it. Ansible merges those over the fragments
key by key, so a module's `details` replace a variant's while its `support` is kept.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check mode and return a prediction of C(changed) without changing the target.
  diff_mode:
    description: Returns what has changed (or would change, in check mode) when run in diff mode.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
"""

    POSIX = r"""
attributes:
  platform:
    platforms: posix
"""

    INFO_MODULE = r"""
attributes:
  check_mode:
    support: full
    details: The module only reads, so it does the same in check mode.
  diff_mode:
    support: none
    details: The module only reads; there is nothing to diff.
"""

    DIFF = r"""
attributes:
  diff_mode:
    support: full
    details: The properties that change (or would change, in check mode), before and after.
"""
