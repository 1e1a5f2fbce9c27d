# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Source kinds: ``base`` (the SourceKind interface), one module per kind, and ``registry`` (KINDS)."""
