"""Reading Ansible's YAML (playbooks, inventories) without Ansible: fast, for checks before a run."""

from __future__ import annotations

import yaml


class AnyTagLoader(yaml.SafeLoader):
    """Parses YAML with Ansible's tags (!vault, !unsafe) without interpreting them."""


AnyTagLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
