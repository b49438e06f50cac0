"""awx/create_workflow.yml against the awx.awx collection's argument specs.

The specs are the ``argument_spec = dict(...)`` of each module's ``main()`` in awx.awx as the Ansible community
package on PyPI ships it (tests/helpers/awx_collection.py downloads it once; ``make setup`` does), read from the
modules' source: every option the playbook passes must be one of them (or an alias), and every literal choice
one the module offers.
"""

from __future__ import annotations

import pytest
import yaml

from tests.helpers.awx_collection import argument_spec
from tests.helpers.collection import REPO_ROOT

pytestmark = pytest.mark.unit

MODULES = ("job_template", "workflow_job_template", "credential_type", "notification_template")


def _options(spec):
    return set(spec) | {alias for option in spec.values() for alias in option.get("aliases", [])}


@pytest.fixture(scope="module")
def specs():
    return {f"awx.awx.{name}": argument_spec(name) for name in MODULES}


@pytest.fixture(scope="module")
def awx_options(specs):
    return {module: _options(spec) for module, spec in specs.items()}


@pytest.fixture(scope="module")
def awx_choices(specs):
    return {(module, option): set(value["choices"]) for module, spec in specs.items()
            for option, value in spec.items() if "choices" in value}


# workflow_nodes (alias schema): a node's keys, and its related links.
NODE_KEYS = {"identifier", "unified_job_template", "related", "extra_data", "inventory", "all_parents_must_converge"}
RELATED_KEYS = {"success_nodes", "failure_nodes", "always_nodes", "credentials"}
TEMPLATE_KEYS = {"name", "type", "organization", "description", "timeout", "inventory"}


def _tasks():
    book = yaml.safe_load((REPO_ROOT / "awx" / "create_workflow.yml").read_text())[0]
    return book, [task for task in book["tasks"] if any(key.startswith("awx.awx.") for key in task)]


def test_every_option_is_one_the_awx_module_takes(awx_options, awx_choices):
    book, tasks = _tasks()
    assert {next(k for k in task if k.startswith("awx.awx.")) for task in tasks} == set(awx_options)
    for task in tasks:
        module = next(k for k in task if k.startswith("awx.awx."))
        unknown = set(task[module]) - awx_options[module]
        assert not unknown, f"{task['name']}: {module} has no option {sorted(unknown)}"
    for path in sorted((REPO_ROOT / "awx" / "credential_types").glob("*.json")):
        assert yaml.safe_load(path.read_text())["kind"] in awx_choices[("awx.awx.credential_type", "kind")], path.name
    for entry in book["vars"]["awx_canary_notifications"].split("'notification_type': ")[1:]:
        assert entry.split("'")[1] in awx_choices[("awx.awx.notification_template", "notification_type")]


def test_the_workflow_nodes_are_linked_as_the_module_expects():
    _book, tasks = _tasks()
    workflow = next(t["awx.awx.workflow_job_template"] for t in tasks if "awx.awx.workflow_job_template" in t)
    nodes = {node["identifier"]: node for node in workflow["workflow_nodes"]}
    for node in nodes.values():
        assert set(node) <= NODE_KEYS, node["identifier"]
        assert set(node["unified_job_template"]) <= TEMPLATE_KEYS, node["identifier"]
        assert node["unified_job_template"]["type"] in ("job_template", "workflow_approval")
        for kind, links in node.get("related", {}).items():
            assert kind in RELATED_KEYS, (node["identifier"], kind)
            for link in links:
                assert link["identifier"] in nodes, (node["identifier"], link)
    assert [link["identifier"] for link in nodes["canary"]["related"]["failure_nodes"]] == ["rollback"]
