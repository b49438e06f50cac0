"""The rulebooks travel with the collection, and the decision environment can carry them.

Collections ship rulebooks in ``extensions/eda/rulebooks/`` and their event filters in
``extensions/eda/plugins/event_filter/`` (ansible-rulebook finds them there by FQCN), so the
tarball must hold them; ``ansible-builder create`` must accept ee/decision-environment.yml and
install ansible-rulebook and Java 17 beside the collection (``build`` needs a container engine).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import yaml

from tests.helpers.awx import _run, build_tarball, clean_copy
from tests.helpers.collection import REPO_ROOT

pytestmark = pytest.mark.slow

SHIPPED = ("extensions/eda/rulebooks/release_on_push.yml", "extensions/eda/rulebooks/release_on_push_controller.yml",
           "extensions/eda/rulebooks/protect_on_alerts.yml", "extensions/eda/plugins/event_filter/registry_push.py",
           "extensions/eda/plugins/event_filter/alertmanager_alerts.py", "extensions/eda/prometheus/prometheusrule.yml",
           "playbooks/eda_release.yml", "playbooks/eda_alert.yml", "playbooks/protect.yml", "playbooks/_local.yml",
           "playbooks/tasks/eda_release.yml", "playbooks/tasks/eda_alert.yml", "playbooks/tasks/eda_protect.yml")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clean_copy(tmp_path_factory.mktemp("eda") / "project")


def test_the_tarball_carries_the_rulebooks_and_their_filters(project: Path):
    with tarfile.open(build_tarball(project)) as archive:
        names = set(archive.getnames())
    assert not [name for name in SHIPPED if name not in names]
    assert not [name for name in names if name.startswith("extensions/molecule")]


def test_the_decision_environment_installs_ansible_rulebook_java_and_the_collection(project: Path):
    build_tarball(project)
    context = project / "build" / "de" / "context"
    _run([str(Path(REPO_ROOT / ".venv" / "bin" / "ansible-builder")), "create", "-f", "ee/decision-environment.yml",
          "-c", str(context)], project)
    build = context / "_build"
    assert "ansible-rulebook" in (build / "requirements.txt").read_text()
    assert "java-17-openjdk-headless" in (build / "bindep.txt").read_text()
    [collection] = yaml.safe_load((build / "requirements.yml").read_text())["collections"]
    assert (build / collection["name"]).is_file()
