"""Every module's EXAMPLES are valid invocations: YAML tasks that name an aitbc.ops module which exists,
with arguments that pass that module's own argument_spec (the one its main() builds). Values that are
Jinja templates are left out of the check: they are only known at run time."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

REPO = Path(__file__).resolve().parents[4]  # the collection root (the checkout, or ansible-test's copy)

MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
PREFIX = "aitbc.ops."


class _Captured(Exception):
    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("captured")
        self.kwargs = kwargs


def module_spec(name: str) -> dict[str, Any]:
    """The keyword arguments the module's main() passes to AnsibleModule."""
    module = importlib.import_module(f"ansible_collections.aitbc.ops.plugins.modules.{name}")

    def capture(**kwargs: Any) -> None:
        raise _Captured(kwargs)

    original = module.AnsibleModule
    module.AnsibleModule = capture
    try:
        module.main()
    except _Captured as captured:
        return captured.kwargs
    finally:
        module.AnsibleModule = original
    raise AssertionError(f"{name}: main() did not build an AnsibleModule")


def static(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, dict):
        return all(static(v) for v in value.values())
    if isinstance(value, list):
        return all(static(v) for v in value)
    return True


def example_tasks(name: str) -> list[dict[str, Any]]:
    module = importlib.import_module(f"ansible_collections.aitbc.ops.plugins.modules.{name}")
    tasks = yaml.safe_load(module.EXAMPLES)
    assert isinstance(tasks, list) and tasks, f"{name}: EXAMPLES is not a list of tasks"
    return tasks


@pytest.mark.parametrize("name", MODULES)
def test_examples_call_the_module_with_valid_arguments(name: str) -> None:
    spec = module_spec(name)
    calls = 0
    for task in example_tasks(name):
        assert task.get("name"), f"{name}: every example task has a name"
        ours = [key for key in task if key.startswith(PREFIX)]
        for key in ours:
            assert key[len(PREFIX) :] in MODULES, f"{name}: example uses unknown module {key}"
        if f"{PREFIX}{name}" not in task:
            continue
        calls += 1
        args = {k: v for k, v in (task[f"{PREFIX}{name}"] or {}).items() if static(v)}
        required = [k for k, v in spec["argument_spec"].items() if v.get("required")]
        templated = {k for k, v in (task[f"{PREFIX}{name}"] or {}).items() if not static(v)}
        checked = {k: v for k, v in spec["argument_spec"].items() if k not in templated}
        for key in required:
            assert key in args or key in templated, f"{name}: example lacks required option {key}"
        validator = ArgumentSpecValidator(
            checked,
            mutually_exclusive=spec.get("mutually_exclusive"),
            required_if=[r for r in spec.get("required_if") or [] if r[0] not in templated],
        )
        result = validator.validate(args)
        errors = [str(e) for e in result.errors if "required" not in str(e) or not templated]
        assert not errors, f"{name}: example task {task['name']!r}: {errors}"
    assert calls, f"{name}: EXAMPLES never call aitbc.ops.{name}"
