"""The awx.awx collection, as the Ansible community package on PyPI ships it, for checking our AWX files
against its modules' own argument specs.

``python -m tests.helpers.awx_collection`` (run by ``make setup``) downloads the ``ansible`` wheel once and
keeps only ``ansible_collections/awx/awx`` under ``~/.cache/canary-istio-lab/awx-collection``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

# The community package that carries awx.awx (its 11.x line installs on Python 3.11).
ANSIBLE_PACKAGE = "ansible==11.13.0"
CACHE = Path.home() / ".cache" / "canary-istio-lab" / "awx-collection"
PREFIX = "ansible_collections/awx/awx/"
MODULES = CACHE / PREFIX / "plugins" / "modules"


def ensure() -> Path:
    """The awx.awx modules directory, downloaded and unpacked when missing."""
    if (MODULES / "workflow_job_template.py").is_file():
        return MODULES
    with tempfile.TemporaryDirectory() as download:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check",
                        ANSIBLE_PACKAGE, "-d", download], check=True)
        wheel = next(Path(download).glob("ansible-*.whl"))
        staging = CACHE.with_name(CACHE.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(staging, [name for name in archive.namelist() if name.startswith(PREFIX)])
        shutil.rmtree(CACHE, ignore_errors=True)
        staging.rename(CACHE)
    return MODULES


_BUILTINS = {"list": list, "dict": dict, "tuple": tuple, "sorted": sorted, "set": set}


def _value(node: ast.AST, constants: dict[str, Any]) -> Any:
    """A literal, or ``dict(key=...)`` / ``list`` of them, as written in an argument spec; an expression
    over the module's own constants (``list(KIND_CHOICES.keys())``) is evaluated with them alone."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {keyword.arg: _value(keyword.value, constants) for keyword in node.keywords}
    if isinstance(node, ast.Dict):
        return {ast.literal_eval(key): _value(value, constants) for key, value in zip(node.keys, node.values,
                                                                                      strict=True)}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_value(item, constants) for item in node.elts]
    try:
        return ast.literal_eval(node)
    except ValueError:
        expression = ast.Expression(node)
        return eval(compile(expression, "<awx spec>", "eval"), {"__builtins__": _BUILTINS}, dict(constants))


def argument_spec(module: str) -> dict[str, Any]:
    """The ``argument_spec = dict(...)`` of awx.awx module ``module``'s ``main()``, read from its source."""
    tree = ast.parse((ensure() / f"{module}.py").read_text(encoding="utf-8"))
    constants: dict[str, Any] = {}
    for node in tree.body:  # module-level literals the spec may name
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "argument_spec"):
            return _value(node.value, constants)
    raise LookupError(f"awx.awx.{module} has no argument_spec assignment")


if __name__ == "__main__":
    print(ensure())
