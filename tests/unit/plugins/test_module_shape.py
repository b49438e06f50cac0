"""One module shape (docs/modules.md, "How a module is built"): every module declares its options,
the services it uses and ``execute(ctx)``; every action plugin is the one in-process action, naming
its module and overriding nothing but the ``show`` hook."""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest

from ansible_collections.canary.istio.plugins.module_utils._context import SERVICES
from ansible_collections.canary.istio.plugins.plugin_utils._in_process import InProcessModuleAction
from tests.helpers.collection import REPO_ROOT

pytestmark = pytest.mark.unit

PLUGINS = REPO_ROOT / "plugins"
MODULES = sorted(path.stem for path in (PLUGINS / "modules").glob("*.py") if path.stem != "__init__")


@pytest.mark.parametrize("name", MODULES)
def test_a_module_declares_options_services_and_execute(name):
    module = importlib.import_module(f"ansible_collections.canary.istio.plugins.modules.{name}")
    assert isinstance(module.ARGUMENT_SPEC, dict)
    assert set(module.USES) <= set(SERVICES), module.USES
    assert list(inspect.signature(module.execute).parameters) == ["ctx"]
    # The module file builds no AnsibleModule of its own: main() hands over to _module.run.
    tree = ast.parse((PLUGINS / "modules" / f"{name}.py").read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert "AnsibleModule" not in imported and "run" in imported


@pytest.mark.parametrize("name", MODULES)
def test_its_action_plugin_is_the_one_in_process_action(name):
    action = importlib.import_module(f"ansible_collections.canary.istio.plugins.action.{name}").ActionModule
    assert issubclass(action, InProcessModuleAction) and action.MODULE == name
    overridden = {attribute for attribute, value in vars(action).items()
                  if callable(value) and not attribute.startswith("__")}
    assert overridden <= {"show"}, overridden
