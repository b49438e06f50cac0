"""The AWX survey specs ask for exactly what the roles accept (names, types, choices, ranges)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SURVEYS = REPO_ROOT / "awx" / "surveys"
SPECS = yaml.safe_load((REPO_ROOT / "roles" / "canary_release" / "meta" / "argument_specs.yml").read_text())
DEFAULTS = yaml.safe_load((REPO_ROOT / "roles" / "canary_release" / "defaults" / "main.yml").read_text())
# Which entry point of the role each survey's job template runs.
ENTRY_POINT = {"canary.json": "main", "set_ratio.json": "set_ratio", "promote.json": "promote"}
SURVEY_TYPES = {"integer": "int", "multiplechoice": "str", "text": "str", "float": "float"}

pytestmark = pytest.mark.unit


def _choices(question):
    choices = question["choices"]
    return choices.split("\n") if isinstance(choices, str) else list(choices)


def _range(description: str) -> tuple[int, int] | None:
    found = re.search(r"from (\d+) to (\d+)", description)
    return (int(found.group(1)), int(found.group(2))) if found else None


def test_every_survey_has_a_known_entry_point():
    assert sorted(p.name for p in SURVEYS.glob("*.json")) == sorted(ENTRY_POINT)


@pytest.mark.parametrize("survey_file", sorted(ENTRY_POINT))
def test_survey_agrees_with_argument_spec(survey_file):
    survey = json.loads((SURVEYS / survey_file).read_text())
    options = SPECS["argument_specs"][ENTRY_POINT[survey_file]]["options"]
    assert survey["spec"], survey_file
    for question in survey["spec"]:
        name = question["variable"]
        entry_point = ENTRY_POINT[survey_file]
        assert name in options, f"{survey_file}: {name} is not an option of the role's {entry_point} entry point"
        option = options[name]
        assert SURVEY_TYPES[question["type"]] == option["type"], (survey_file, name)
        description = option["description"]
        description = " ".join(description) if isinstance(description, list) else description
        if question["type"] == "multiplechoice":
            assert sorted(_choices(question)) == sorted(option["choices"]), (survey_file, name)
            assert question["default"] in option["choices"]
        if question["type"] == "integer":
            assert _range(description) == (question["min"], question["max"]), (survey_file, name, description)
            assert question["min"] <= question["default"] <= question["max"]
        if "default" in option:
            # A survey default may differ only for answers the role has no default for.
            assert question["default"] == option["default"] == DEFAULTS[name], (survey_file, name)


def test_argument_specs_and_defaults_mirror_each_other():
    for role in ("base_release", "canary_release"):
        specs = yaml.safe_load((REPO_ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
        defaults = yaml.safe_load((REPO_ROOT / "roles" / role / "defaults" / "main.yml").read_text())
        options = specs["argument_specs"]["main"]["options"]
        for name, option in options.items():
            assert name.startswith(f"{role}_"), name
            assert option.get("description") and option.get("type"), name
            if "default" in option:
                assert defaults.get(name) == option["default"], (role, name)
            else:
                assert name not in defaults, f"{role}: {name} has a default in defaults/main.yml but not in the spec"
        assert set(defaults) <= set(options), set(defaults) - set(options)
