"""awx/create_workflow.yml against the awx.awx collection's argument specs.

awx.awx is not installed here (nor a dependency); the option names and choices below are copied from its
modules in ansible/awx (awx_collection/plugins/modules/: job_template.py at 0377868e, workflow_job_template.py,
credential_type.py, notification_template.py - the ``argument_spec = dict(...)`` of each ``main()``), limited
to what a typo here could hit. Every option the playbook passes must be one of them.
"""

from __future__ import annotations

import pytest
import yaml

from tests.helpers.collection import REPO_ROOT

pytestmark = pytest.mark.unit

OPTIONS = {
    "awx.awx.job_template": {
        "name", "new_name", "copy_from", "description", "organization", "job_type", "inventory", "project", "playbook",
        "credentials", "credential", "vault_credential", "execution_environment", "forks", "limit", "verbosity",
        "extra_vars", "job_tags", "force_handlers", "skip_tags", "start_at_task", "timeout", "use_fact_cache",
        "host_config_key", "ask_scm_branch_on_launch", "ask_diff_mode_on_launch", "ask_variables_on_launch",
        "ask_limit_on_launch", "ask_tags_on_launch", "ask_skip_tags_on_launch", "ask_job_type_on_launch",
        "ask_verbosity_on_launch", "ask_inventory_on_launch", "ask_credential_on_launch",
        "ask_execution_environment_on_launch", "ask_forks_on_launch", "ask_instance_groups_on_launch",
        "ask_job_slice_count_on_launch", "ask_labels_on_launch", "ask_timeout_on_launch", "survey_enabled",
        "survey_spec", "become_enabled", "diff_mode", "allow_simultaneous", "custom_virtualenv", "job_slice_count",
        "webhook_service", "webhook_credential", "scm_branch", "labels", "instance_groups",
        "prevent_instance_group_fallback", "notification_templates_started", "notification_templates_success",
        "notification_templates_error", "state"},
    "awx.awx.workflow_job_template": {
        "name", "new_name", "copy_from", "description", "extra_vars", "organization", "survey_spec", "survey_enabled",
        "allow_simultaneous", "ask_variables_on_launch", "ask_labels_on_launch", "ask_tags_on_launch",
        "ask_skip_tags_on_launch", "inventory", "limit", "scm_branch", "ask_inventory_on_launch",
        "ask_scm_branch_on_launch", "ask_limit_on_launch", "webhook_service", "webhook_credential", "labels",
        "notification_templates_started", "notification_templates_success", "notification_templates_error",
        "notification_templates_approvals", "workflow_nodes", "destroy_current_nodes", "state"},
    "awx.awx.credential_type": {"name", "new_name", "description", "kind", "inputs", "injectors", "state"},
    "awx.awx.notification_template": {
        "name", "new_name", "copy_from", "description", "organization", "notification_type",
        "notification_configuration", "messages", "state"},
}
CHOICES = {
    ("awx.awx.credential_type", "kind"): {"ssh", "vault", "net", "scm", "cloud", "insights"},
    ("awx.awx.notification_template", "notification_type"): {
        "email", "grafana", "irc", "mattermost", "pagerduty", "rocketchat", "slack", "twilio", "webhook"},
}
# workflow_nodes (alias schema): a node's keys, and its related links.
NODE_KEYS = {"identifier", "unified_job_template", "related", "extra_data", "inventory", "all_parents_must_converge"}
RELATED_KEYS = {"success_nodes", "failure_nodes", "always_nodes", "credentials"}
TEMPLATE_KEYS = {"name", "type", "organization", "description", "timeout", "inventory"}


def _tasks():
    book = yaml.safe_load((REPO_ROOT / "awx" / "create_workflow.yml").read_text())[0]
    return book, [task for task in book["tasks"] if any(key.startswith("awx.awx.") for key in task)]


def test_every_option_is_one_the_awx_module_takes():
    book, tasks = _tasks()
    assert {next(k for k in task if k.startswith("awx.awx.")) for task in tasks} == set(OPTIONS)
    for task in tasks:
        module = next(k for k in task if k.startswith("awx.awx."))
        unknown = set(task[module]) - OPTIONS[module]
        assert not unknown, f"{task['name']}: {module} has no option {sorted(unknown)}"
    for path in sorted((REPO_ROOT / "awx" / "credential_types").glob("*.json")):
        assert yaml.safe_load(path.read_text())["kind"] in CHOICES[("awx.awx.credential_type", "kind")], path.name
    for entry in book["vars"]["awx_canary_notifications"].split("'notification_type': ")[1:]:
        assert entry.split("'")[1] in CHOICES[("awx.awx.notification_template", "notification_type")]


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
