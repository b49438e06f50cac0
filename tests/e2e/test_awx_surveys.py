"""The AWX survey specs ask for exactly what the roles and the stage playbooks accept (names, types,
choices, ranges), and for everything a playbook requires, so a release is launched, not edited."""

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
PLAYBOOKS = REPO_ROOT / "playbooks"
# Which entry point of the role each survey's job template runs.
ENTRY_POINT = {"canary.json": "main", "set_ratio.json": "set_ratio", "promote.json": "promote",
               "rollback.json": "rollback", "status.json": "status", "workflow.json": "main", "waves.json": "main"}
# Which playbooks get each survey's answers (a workflow's survey reaches every job it runs).
SURVEY_PLAYBOOKS = {"canary.json": ["canary.yml"], "set_ratio.json": ["set_ratio.yml"],
                    "promote.json": ["promote.yml"], "rollback.json": ["rollback.yml"], "status.json": ["status.yml"],
                    "workflow.json": ["canary.yml", "promote.yml", "rollback.yml"], "waves.json": ["waves.yml"]}
SURVEY_TYPES = {"integer": "int", "multiplechoice": "str", "text": "str", "float": "float"}
# Survey-friendly variables of the stage playbooks (playbooks/tasks/inputs.yml) and the role
# variable each one sets: a survey answer is a string, the role takes a list for manifests.
PLAYBOOK_VARIABLES = {"canary_namespace": "canary_release_namespace", "canary_manifests": "canary_release_manifests",
                      "canary_analysis": "canary_release_analysis"}
INPUTS = (PLAYBOOKS / "tasks" / "inputs.yml").read_text()

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
        if name.startswith("canary_waves_"):
            # Read by playbooks/waves.yml: its play default is the survey's, its checks accept every choice.
            waves = yaml.safe_load((PLAYBOOKS / "waves.yml").read_text())[0]
            assert waves["vars"][name] == question["default"], name
            assert question["type"] == "multiplechoice", name
            continue
        if name in PLAYBOOK_VARIABLES:
            # Read by the playbooks, which turn it into the role's variable.
            assert question["type"] == "text", (survey_file, name)
            assert f"{PLAYBOOK_VARIABLES[name]}:" in INPUTS and f"{name} |" in INPUTS, name
            role_default = options[PLAYBOOK_VARIABLES[name]].get("default")
            if question.get("default") and role_default:
                assert question["default"] == role_default, (survey_file, name)
            continue
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


def _required_by(playbook: str) -> list[str]:
    """The names a stage playbook checks before it starts (canary_playbook_required; "a|b" is either)."""
    play = yaml.safe_load((PLAYBOOKS / playbook).read_text())[0]
    if play.get("ansible.builtin.import_playbook") == "_stage.yml":
        # A stage playbook: the shared play checks the names the import gives it, first. _stage.yml is the
        # local play (_local.yml), whose only task imports the tasks file _stage.yml names.
        stage = yaml.safe_load((PLAYBOOKS / "_stage.yml").read_text())[0]
        assert stage.get("ansible.builtin.import_playbook") == "_local.yml", stage
        local = yaml.safe_load((PLAYBOOKS / "_local.yml").read_text())[0]
        [runs] = [task.get("ansible.builtin.import_tasks", "") for task in local["tasks"]]
        assert runs.startswith("{{ canary_play_tasks |"), runs
        tasks_file = PLAYBOOKS / stage["vars"]["canary_play_tasks"]
        first, required = yaml.safe_load(tasks_file.read_text())[0], play["vars"]["canary_playbook_required"]
        checks = tasks_file.parent / first.get("ansible.builtin.import_tasks", "")
    else:
        first = play["tasks"][0]
        required = first["vars"]["canary_playbook_required"]
        checks = PLAYBOOKS / first.get("ansible.builtin.import_tasks", "")
    assert checks == PLAYBOOKS / "tasks" / "inputs.yml", f"{playbook} checks its inputs later"
    if isinstance(required, str):  # waves.yml: a template over canary_waves_mode; a release needs the most
        import ast

        import jinja2

        required = ast.literal_eval(jinja2.Environment().from_string(required).render(canary_waves_mode="release"))
    return required


@pytest.mark.parametrize("survey_file", sorted(SURVEY_PLAYBOOKS))
def test_survey_asks_for_everything_its_playbooks_require(survey_file):
    survey = json.loads((SURVEYS / survey_file).read_text())
    asked = {q["variable"] for q in survey["spec"] if q["required"]}
    for playbook in SURVEY_PLAYBOOKS[survey_file]:
        for entry in _required_by(playbook):
            assert asked & set(entry.split("|")), f"{survey_file} does not ask for {entry}, which {playbook} requires"


def test_workflow_answers_every_required_question_of_its_job_templates():
    """A job in a workflow cannot ask: its survey's required questions without a default must be answered
    by the workflow's survey or extra variables."""
    book = yaml.safe_load((REPO_ROOT / "awx" / "create_workflow.yml").read_text())[0]
    stages = {s["name"]: s for s in book["vars"]["awx_canary_stages"]}
    workflow_task = next(task["awx.awx.workflow_job_template"] for task in book["tasks"]
                         if "awx.awx.workflow_job_template" in task)
    assert "surveys/workflow.json" in workflow_task["survey_spec"]
    given = set(workflow_task["extra_vars"]) | {q["variable"] for q in
                                                json.loads((SURVEYS / "workflow.json").read_text())["spec"]}
    job_templates = [n["unified_job_template"]["name"] for n in workflow_task["workflow_nodes"]
                     if n["unified_job_template"]["type"] == "job_template"]
    assert sorted(job_templates) == ["canary promote", "canary release", "canary rollback"]
    for name in job_templates:
        survey = json.loads((SURVEYS / stages[name]["survey"]).read_text())
        for question in survey["spec"]:
            if question["required"] and question.get("default") in (None, ""):
                assert question["variable"] in given, (name, question["variable"])


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
