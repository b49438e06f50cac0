"""The CRDs' own ``x-kubernetes-validations`` (CEL) rules, evaluated as a newer kube-apiserver does.

The lab's kube-apiserver 1.20 drops these rules from the CRDs it stores. The webhook evaluates them
instead: every rule's expression exactly as its CRD publishes it (Istio's vendored
``crd-all.gen.yaml`` and Gateway API's vendored standard CRDs), with cel-python plus the Kubernetes
extension functions of ``lab.webhook.kubernetes_cel``. No rule is rewritten.

How Kubernetes applies them (``apiextensions-apiserver/pkg/apiserver/schema/cel/validation.go``):

- a rule on a schema node is evaluated with ``self`` bound to the value at that node, wherever the
  object has one (absent optional fields are not visited); list items and map values are visited
  through ``items`` and ``additionalProperties``;
- a rule that names ``oldSelf`` is a transition rule: evaluated only on UPDATE, where the old
  object has a value at the same place (reached through properties and map keys);
- a rule that is false is reported as ``<path>: Invalid value: "<schema type>": <message>``; the
  errors of one object are joined as the apiserver joins field errors.

Rules are compiled on first use and kept, so a webhook starts fast and pays only for the rules
its objects reach.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import celpy
import yaml

from lab.webhook.kubernetes_cel import FUNCTIONS

log = logging.getLogger("lab.webhook")

CRD_DIR = Path(__file__).resolve().parent.parent / "crds"
CRD_FILES = (CRD_DIR / "crd-all.gen.yaml", *sorted((CRD_DIR / "gateway-api").glob("gateway.networking.k8s.io_*.yaml")))

_lock = threading.Lock()
_schema_lock = threading.Lock()
_environment = celpy.Environment()


def schemas() -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) → that version's openAPIV3Schema, for every vendored CRD."""
    with _schema_lock:  # read once, even when a review comes while the start-up thread reads
        return _read_schemas()


@lru_cache(maxsize=1)
def _read_schemas() -> dict[tuple[str, str, str], dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in CRD_FILES:
        for doc in yaml.load_all(path.read_text(), Loader=loader):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                if schema:
                    found[(spec["group"], version["name"], spec["names"]["kind"])] = schema
    return found


def groups() -> set[str]:
    return {group for group, _, _ in schemas()}


_programs: dict[str, Any] = {}


def _program(rule: str) -> Any:
    with _lock:
        program = _programs.get(rule)
        if program is None:
            program = _programs[rule] = _environment.program(_environment.compile(rule), functions=FUNCTIONS)
        return program


def evaluate(rule: str, value: Any, old_value: Any = None) -> Any:
    """One rule's result for ``self`` = value (``oldSelf`` = old_value): a CEL value or a CELEvalError."""
    # Writes repeat most of an object (a weight change leaves every match and filter as it was), and
    # cel-python walks its parse tree for each evaluation: results are kept per rule and value.
    return _evaluate_json(rule, _canonical(value), None if old_value is None else _canonical(old_value))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=16384)
def _evaluate_json(rule: str, value: str, old_value: str | None) -> Any:
    activation = {"self": celpy.json_to_cel(json.loads(value))}
    if old_value is not None:
        activation["oldSelf"] = celpy.json_to_cel(json.loads(old_value))
    try:
        return _program(rule).evaluate(activation)
    except celpy.CELEvalError as error:
        return error


def _type_name(schema: Mapping[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "string"
    return str(schema.get("type") or "object")


def _go_value(value: Any) -> str:
    return "\"" + str(value) + "\""


def with_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """``value`` with the schema's defaults filled in, as the apiserver defaults before validating.

    The lab's apiserver has already applied every default but the ``default: ""`` ones it cannot
    take (lab/crds/gateway-api/README.md); the rules are written for the defaulted object, so the
    webhook defaults from the CRD as published before it evaluates them.
    """
    if isinstance(value, Mapping):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        result = {}
        for key, item in value.items():
            child = properties.get(key) if key in properties else (extra if isinstance(extra, Mapping) else None)
            result[key] = with_defaults(child, item) if child is not None else item
        for key, child in properties.items():
            if key not in result and "default" in child:
                result[key] = with_defaults(child, child["default"])
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [with_defaults(schema["items"], item) for item in value]
    return value


def _visit(schema: Mapping[str, Any], value: Any, old: Any, path: str, errors: list[str]) -> None:
    if value is None:
        return
    for rule in schema.get("x-kubernetes-validations") or ():
        expression = rule["rule"]
        transition = "oldSelf" in expression
        if transition and old is None:
            continue
        result = evaluate(expression, value, old if transition else None)
        where = path or "<nil>"
        if isinstance(result, celpy.CELEvalError):
            # validation.go: "<error> evaluating rule: <message, else the rule>" (no such key,
            # a failed conversion, an overflow, ...). cel-python's wording of the error is its own.
            detail = result.args[0] if result.args else result
            errors.append(f"{where}: Invalid value: {_go_value(_type_name(schema))}: "
                          f"{detail} evaluating rule: {rule.get('message') or expression}")
        elif result is not True and result != celpy.celtypes.BoolType(True):
            message = rule.get("message") or f"failed rule: {expression}"
            errors.append(f"{where}: Invalid value: {_go_value(_type_name(schema))}: {message}")
    if isinstance(value, Mapping):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        old_map = old if isinstance(old, Mapping) else {}
        for key, item in value.items():
            child = properties.get(key)
            if child is not None:
                _visit(child, item, old_map.get(key), f"{path}.{key}" if path else key, errors)
            elif isinstance(extra, Mapping):
                _visit(extra, item, old_map.get(key), f"{path}[{key}]", errors)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                _visit(items, item, None, f"{path}[{index}]", errors)


def violations(obj: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> list[str]:
    """The rules ``obj`` breaks, each as the apiserver words a field error; [] when none (or no CRD)."""
    group, _, version = str(obj.get("apiVersion") or "").rpartition("/")
    schema = schemas().get((group, version, str(obj.get("kind") or "")))
    if schema is None:
        return []
    errors: list[str] = []
    # metadata is the apiserver's, not the CRD's: its rules never apply there.
    for key in ("spec", "status"):
        if key in obj and key in (schema.get("properties") or {}):
            child = schema["properties"][key]
            old_value = (old or {}).get(key)
            _visit(child, with_defaults(child, obj[key]),
                   with_defaults(child, old_value) if old_value is not None else None, key, errors)
    top_level = schema.get("x-kubernetes-validations")
    if top_level:
        _visit({"x-kubernetes-validations": top_level, "type": "object"}, dict(obj), old, "", errors)
    return errors


def refusal(obj: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> str | None:
    """The apiserver's message for an object its CRD's rules refuse, or None.

    ``HTTPRoute.gateway.networking.k8s.io "name" is invalid: <error>`` for one error, the errors
    in brackets joined by ", " for several (``apierrors.NewInvalid``).
    """
    errors = violations(obj, old)
    if not errors:
        return None
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    name = (obj.get("metadata") or {}).get("name", "")
    joined = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
    return f"{obj.get('kind')}.{group} \"{name}\" is invalid: {joined}"
