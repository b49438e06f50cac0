"""One name, one meaning, across the whole collection.

An option name means one thing in every module: the same type (and elements and choices) and the
same default. A few names keep the same meaning with a default of their own per module; for those,
every module's documentation must say the same unit. A module documents exactly the options it
takes (its ``USES`` decides which connection options those are). And the shared code defines each of
the names that once had two meanings (``run``, ``Target``, ``validate_name``, ``validate_confidence``)
once. A result key named as an option means what the option means: the same unit, and for the
confidence level a value the option takes (traffic_probe once returned it as a fraction).
The module-option/connection-option clash check itself is in tests/unit/plugins/module_utils/test_client.py.
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.canary.istio.plugins.module_utils._module import module_argument_spec
from tests.helpers.collection import REPO_ROOT

pytestmark = pytest.mark.unit

PLUGINS = REPO_ROOT / "plugins"
MODULES = sorted(path.stem for path in (PLUGINS / "modules").glob("*.py") if path.stem != "__init__")

# Same meaning, a default per module: every module's description of the option says this phrase.
OWN_DEFAULTS = {
    "confidence": "percent",          # 99 for a release's analysis, 95 for a look at the graph or a probe
    "window": "Prometheus",           # a Prometheus duration; each module picks how far back it looks
    "concurrency": "at the same time",  # requests in flight at once
    "headers": "header",              # HTTP request headers, name to value
    "validate_certs": "certificate",  # verify the TLS certificate of the server the option's module talks to
    "decision": "promote",            # the gate's answer: promote, rollback, ...
}
# Same meaning, a wider type in one module: manifest's definition may also be YAML text or a list.
OWN_TYPES = {"definition": "manifest"}
# Istio's own field names, which issue 25 requires as the resilience module's option names: there
# ``timeout`` is the route's timeout as Istio spells it (a duration such as "0.5s"), not the seconds a
# client waits for an answer (traffic_probe). Listed per module, so a third meaning still fails.
ISTIO_FIELD_NAMES = {("resilience", "timeout")}
# Result keys (at any depth of RETURN and of its samples) that carry an option's value: the unit their
# description says, as the option's does, and the range of values the option takes.
RESULT_UNITS = {"confidence": "percent"}
RESULT_RANGES = {"confidence": (50, 100)}  # a percent from 50 up to, not including, 100
# Names of shared code that once had two meanings; each is defined once now.
ONCE = ("run", "Target", "validate_name", "validate_confidence")


def _module(name: str) -> Any:
    return importlib.import_module(f"ansible_collections.canary.istio.plugins.modules.{name}")


def documented_options(module: Any) -> dict[str, dict[str, Any]]:
    """The options a module documents: those of its doc fragments, then its own."""
    doc = yaml.safe_load(module.DOCUMENTATION)
    options: dict[str, dict[str, Any]] = {}
    for fragment in doc.get("extends_documentation_fragment") or []:
        file_name, _dot, section = fragment.split(".", 2)[2].partition(".")
        holder = importlib.import_module(f"ansible_collections.canary.istio.plugins.doc_fragments.{file_name}")
        options.update(yaml.safe_load(getattr(holder.ModuleDocFragment, section or "DOCUMENTATION")).get("options")
                       or {})
    options.update(doc.get("options") or {})
    return options


def _description(option: dict[str, Any]) -> str:
    text = option.get("description") or ""
    return " ".join(text) if isinstance(text, list) else str(text)


def result_keys(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Every key a RETURN text documents, with its dotted path, through ``contains`` at any depth."""
    found = []

    def walk(keys: dict[str, Any], prefix: str) -> None:
        for name, entry in (keys or {}).items():
            if isinstance(entry, dict):
                found.append((prefix + name, entry))
                walk(entry.get("contains"), f"{prefix}{name}.")
    walk(yaml.safe_load(text or "") or {}, "")
    return found


def sample_values(sample: Any, name: str) -> list[Any]:
    """The values under key ``name`` anywhere inside a RETURN sample."""
    if isinstance(sample, dict):
        return [value for key, value in sample.items() if key == name] + [
            found for value in sample.values() for found in sample_values(value, name)]
    if isinstance(sample, list):
        return [found for value in sample for found in sample_values(value, name)]
    return []


def meanings(specs: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[tuple, list[str]]]:
    """Per option name, the modules that give it each (type, elements, choices, default)."""
    found: dict[str, dict[tuple, list[str]]] = defaultdict(lambda: defaultdict(list))
    for module_name, spec in specs.items():
        for name, option in spec.items():
            if (module_name, name) in ISTIO_FIELD_NAMES:
                continue
            meaning = (None if name in OWN_TYPES else option.get("type", "str"), option.get("elements"),
                       tuple(sorted(map(str, option.get("choices") or ()))),
                       None if name in OWN_DEFAULTS else repr(option.get("default")))
            found[name][meaning].append(module_name)
    return found


def second_meanings(specs: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[tuple, list[str]]]:
    return {name: dict(by_meaning) for name, by_meaning in meanings(specs).items() if len(by_meaning) > 1}


@pytest.fixture(scope="module")
def specs() -> dict[str, dict[str, dict[str, Any]]]:
    return {name: module_argument_spec(_module(name)) for name in MODULES}


def test_every_option_name_has_one_meaning(specs):
    assert second_meanings(specs) == {}


def test_a_second_meaning_of_a_name_fails():
    # As traffic_probe's confidence was once a fraction (default 0.95) where others take a percent,
    # or namespace defaulted to "default" in some modules only.
    specs = {"a": {"namespace": {"type": "str"}, "timeout": {"type": "float", "default": 10.0}},
             "b": {"namespace": {"type": "str", "default": "default"}, "timeout": {"type": "int", "default": 10}}}
    assert set(second_meanings(specs)) == {"namespace", "timeout"}


@pytest.mark.parametrize("name,phrase", sorted(OWN_DEFAULTS.items()))
def test_a_name_with_defaults_of_its_own_says_the_same_unit_everywhere(name, phrase):
    described = {module: _description(documented_options(_module(module)).get(name, {}))
                 for module in MODULES if name in module_argument_spec(_module(module))}
    assert len(described) >= 2, f"{name} is in one module only; drop it from OWN_DEFAULTS"
    assert {module: text for module, text in described.items() if phrase.lower() not in text.lower()} == {}


@pytest.mark.parametrize("module_name", MODULES)
def test_a_module_documents_exactly_the_options_it_takes(module_name):
    module = _module(module_name)
    assert set(documented_options(module)) == set(module_argument_spec(module))


def test_confidence_is_a_percent_everywhere():
    for module in MODULES:
        option = module_argument_spec(_module(module)).get("confidence")
        if option is not None:
            assert 50 <= option["default"] < 100, (module, option)


def unit_not_said(returns: dict[str, str], name: str, phrase: str) -> dict[str, str]:
    """Result keys called ``name`` whose description does not say ``phrase``, per module's RETURN text."""
    described = {f"{module}: {path}": _description(entry)
                 for module, text in returns.items() for path, entry in result_keys(text)
                 if path.rsplit(".", 1)[-1] == name}
    return {key: text for key, text in described.items() if phrase.lower() not in text.lower()}


def values_out_of_range(returns: dict[str, str], name: str, low: float, high: float) -> dict[str, Any]:
    """Values of result keys called ``name``, in RETURN samples at any depth, outside [low, high) (null, the
    option left out, is no value)."""
    values: dict[str, Any] = {}
    for module, text in returns.items():
        for path, entry in result_keys(text):
            if path.rsplit(".", 1)[-1] == name and "sample" in entry:
                values[f"{module}: {path}"] = entry["sample"]
            for index, found in enumerate(sample_values(entry.get("sample"), name)):
                values[f"{module}: {path} sample {index}"] = found
    return {key: value for key, value in values.items() if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high)}


@pytest.fixture(scope="module")
def returns() -> dict[str, str]:
    return {module: _module(module).RETURN for module in MODULES}


@pytest.mark.parametrize("name,phrase", sorted(RESULT_UNITS.items()))
def test_a_result_key_named_as_an_option_says_the_options_unit(returns, name, phrase):
    assert any(path.rsplit(".", 1)[-1] == name for text in returns.values() for path, _entry in result_keys(text))
    assert unit_not_said(returns, name, phrase) == {}


@pytest.mark.parametrize("name,bounds", sorted(RESULT_RANGES.items()))
def test_a_result_value_named_as_an_option_is_one_the_option_takes(returns, name, bounds):
    assert values_out_of_range(returns, name, *bounds) == {}


def test_a_fraction_confidence_in_a_result_fails():
    # traffic_probe's result once stated confidence as a fraction, where its option and every other
    # module's take a percent; mesh_topology states it inside each edge's share.
    fraction = """
confidence:
  description: The confidence level, as a fraction.
  type: float
  sample: 0.95
edges:
  description: Edges.
  type: list
  sample: [{share: {percent: 49.5, confidence: 0.95}}]
"""
    assert set(values_out_of_range({"m": fraction}, "confidence", 50, 100)) == {
        "m: confidence", "m: edges sample 0"}
    assert set(unit_not_said({"m": fraction}, "confidence", "percent")) == {"m: confidence"}


@pytest.mark.parametrize("name", ONCE)
def test_shared_code_defines_each_former_double_once(name):
    defined = []
    for folder in ("module_utils", "plugin_utils"):
        for path in sorted((PLUGINS / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in tree.body:
                targets = [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else (
                    [target.id for target in node.targets if isinstance(target, ast.Name)]
                    if isinstance(node, ast.Assign) else [])
                if name in targets:
                    defined.append(str(path.relative_to(PLUGINS)))
    assert len(defined) <= 1, defined


def test_the_doubles_are_gone_for_good():
    # The modules' own files define no second run/Target either: a module has one entry point, main().
    for module in MODULES:
        source = (PLUGINS / "modules" / f"{module}.py").read_text(encoding="utf-8")
        assert "def run(" not in source and "class Target" not in source, module


def test_names_checked_here_exist(specs):
    assert {"confidence", "namespace", "window"} <= set().union(*specs.values())
    assert Path(PLUGINS / "module_utils" / "_module.py").is_file()
