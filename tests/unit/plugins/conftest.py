# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Import path for the tests under tests/unit/plugins (the ansible-test units layout).

``ansible-test units`` runs them from ``ansible_collections/aitbc/ops``, where the collection loader makes
``ansible_collections.aitbc.ops`` importable. The project's own ``pytest`` collects them from the checkout,
where the same name resolves through the ``collections/ansible_collections/aitbc/ops`` symlink.
"""

from __future__ import annotations

import os
import sys

_COLLECTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "collections")
if os.path.isdir(os.path.join(_COLLECTIONS, "ansible_collections")) and _COLLECTIONS not in sys.path:
    sys.path.insert(0, os.path.normpath(_COLLECTIONS))
