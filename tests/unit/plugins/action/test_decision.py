"""The aitbc.ops.decision action's validation: normalized fields, one clear error for bad input, and
options that match the module's documentation. (The records it leads to: tests/unit/opsrunner/.)"""

from __future__ import annotations

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from ansible_collections.aitbc.ops.plugins.action.decision import ARGUMENT_SPEC, normalize
from ansible_collections.aitbc.ops.plugins.modules.decision import DOCUMENTATION

# -- the action's validation -------------------------------------------------------------------------


def params(**overrides) -> dict:
    values = {name: spec.get("default") for name, spec in ARGUMENT_SPEC.items()}
    values.update(decision="Deploy 1.4.2", kind="deploy")
    values.update(overrides)
    return values


def test_action_normalizes_fields() -> None:
    assert normalize(params(decision="  Deploy 1.4.2\n", context="\nwhy\n", details=[" v1.4.2 "])) == {
        "decision": "Deploy 1.4.2",
        "kind": "deploy",
        "context": "why",
        "rationale": "",
        "impact": "",
        "outcome": "ok",
        "details": ["v1.4.2"],
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"decision": "   "}, "decision must not be empty"),
        ({"decision": "one\ntwo"}, "decision must be one line"),
        ({"kind": "Deploy Now"}, "kind must be lowercase letters"),
        ({"kind": ""}, "kind must not be empty"),
        ({"outcome": ""}, "outcome must not be empty"),
        ({"details": ["a\nb"]}, r"details\[0\] must be one line"),
    ],
)
def test_action_rejects_bad_input(overrides: dict, message: str) -> None:
    with pytest.raises(AnsibleActionFail, match=message):
        normalize(params(**overrides))


def test_action_options_match_the_documentation() -> None:
    documented = yaml.safe_load(DOCUMENTATION)["options"]
    assert set(documented) == set(ARGUMENT_SPEC)
    for name, spec in ARGUMENT_SPEC.items():
        doc = documented[name]
        assert (doc["type"], doc.get("required", False), doc.get("default"), doc.get("elements")) == (
            spec["type"],
            spec.get("required", False),
            spec.get("default"),
            spec.get("elements"),
        ), name
