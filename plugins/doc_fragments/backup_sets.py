# Copyright: aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    """Where a host's backup sets are: the options of the modules that read or prune existing sets."""

    DOCUMENTATION = r"""
options:
  root:
    description:
      - The backup root holding C(<host>/<set>/) folders.
    type: path
    required: true
  host:
    description:
      - The host's folder under O(root), usually C(inventory_hostname).
    type: str
    required: true
"""
