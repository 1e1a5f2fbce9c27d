# Copyright: (c) 2026, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each module's documented `attributes` say the truth: the diff_mode support, as Ansible merges it from
the aitbc.ops.attributes fragments, matches whether the module can return a diff."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from ansible.parsing.plugin_docs import read_docstring
from ansible.plugins.doc_fragments import action_common_attributes
from ansible.utils.plugin_docs import add_fragments
from ansible_collections.aitbc.ops.plugins.doc_fragments import attributes, backup_sets

MODULES = Path(attributes.__file__).resolve().parents[1] / "modules"

# What each module does with --diff. `full`: it reports before/after (its code reads module._diff);
# `none`: there is nothing to diff, said in a details line.
DIFF_SUPPORT = {
    "backup": "none",  # adds a new set, changes nothing that exists
    "backup_info": "none",
    "backup_prune": "full",
    "backup_verify": "none",
    "decision": "none",  # a controller action that changes nothing
    "diagnostics": "none",
    "env_file": "full",
    "health": "none",
    "log_review": "none",
    "release": "full",
    "release_info": "none",
    "restore": "full",
    "service": "full",
}


class FragmentLoader:
    """The fragments the modules list, by name (a stand-in for Ansible's doc fragment loader)."""

    CLASSES = {
        "aitbc.ops.attributes": attributes.ModuleDocFragment,
        "aitbc.ops.backup_sets": backup_sets.ModuleDocFragment,
        "ansible.builtin.action_common_attributes": action_common_attributes.ModuleDocFragment,
    }

    def get(self, name: str) -> type | None:
        found = self.CLASSES.get(name)
        return None if found is None else type(found.__name__, (found,), {"ansible_name": name})


def documented_attributes(name: str) -> dict:
    path = str(MODULES / f"{name}.py")
    doc = read_docstring(path)["doc"]
    add_fragments(doc, path, fragment_loader=FragmentLoader(), is_module=True)
    return doc["attributes"]


def reads_diff_flag(name: str) -> bool:
    """Whether the module's code (not its documentation) looks at module._diff."""
    tree = ast.parse((MODULES / f"{name}.py").read_text(encoding="utf-8"))
    return any(isinstance(node, ast.Attribute) and node.attr == "_diff" for node in ast.walk(tree))


def test_every_module_is_in_the_table() -> None:
    assert sorted(p.stem for p in MODULES.glob("*.py") if p.stem != "__init__") == sorted(DIFF_SUPPORT)


@pytest.mark.parametrize("name", sorted(DIFF_SUPPORT))
def test_documented_diff_mode_is_the_truth(name: str) -> None:
    diff_mode = documented_attributes(name)["diff_mode"]
    assert diff_mode["support"] == DIFF_SUPPORT[name]
    assert diff_mode.get("details"), f"{name}: diff_mode needs a details line"
    assert reads_diff_flag(name) == (DIFF_SUPPORT[name] == "full")


@pytest.mark.parametrize("name", sorted(DIFF_SUPPORT))
def test_every_module_documents_check_mode_and_platform(name: str) -> None:
    documented = documented_attributes(name)
    assert documented["check_mode"]["support"] == "full"
    assert documented["platform"]["platforms"] == ("all" if name == "decision" else "posix")
