"""canary.istio.project_paths: relative manifest paths are read from the user's project in every stage."""

from __future__ import annotations

import os

import pytest

from ansible_collections.canary.istio.plugins.filter.project_paths import project_paths
from ansible_collections.canary.istio.plugins.module_utils._logic.project_paths import project_root

pytestmark = pytest.mark.unit

COLLECTION_PLAYBOOKS = "/runner/requirements_collections/ansible_collections/canary/istio/playbooks"


@pytest.mark.parametrize(("explicit", "playbook_dir", "expected"), [
    ("/srv/project", COLLECTION_PLAYBOOKS, "/srv/project"),
    ("", COLLECTION_PLAYBOOKS, "/runner/project"),          # imported from the installed collection: AWX's cwd
    (None, "/runner/project/playbooks", "/runner/project"),  # a project laid out like this repository
    ("", "/runner/project", "/runner/project"),             # a project's own playbook at its root
    ("  ", "/home/me/site/deploy", "/home/me/site/deploy"),
])
def test_project_root(explicit, playbook_dir, expected):
    assert project_root(explicit, playbook_dir, "/runner/project") == expected


def test_paths_relative_to_the_project_absolute_and_blank(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert project_paths([" deploy/v2 ", "/srv/x.yaml", ""], COLLECTION_PLAYBOOKS) == [
        os.path.join(str(tmp_path), "deploy/v2"), "/srv/x.yaml"]
    assert project_paths("deploy/v2", "/p/playbooks", "/q") == ["/q/deploy/v2"]
