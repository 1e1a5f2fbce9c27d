# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side access to the opsrunner package (the recorder, memory store, heartbeat logic).

Plugins that share the recorder import it through here: the installed package when there is one,
else the copy that ships at the root of this collection.
"""

from __future__ import annotations

import os
import sys


def ensure_opsrunner():
    """Make `import opsrunner` work; returns True when it does."""
    try:
        import opsrunner  # noqa: F401 pylint: disable=unused-import

        return True
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    collection_root = os.path.dirname(os.path.dirname(here))
    if os.path.isdir(os.path.join(collection_root, "opsrunner")) and collection_root not in sys.path:
        sys.path.append(collection_root)
    try:
        import opsrunner  # noqa: F401,F811 pylint: disable=unused-import,reimported

        return True
    except ImportError:
        return False
