"""canary.istio.rollback_deployments: a rollback removes the canary subset's Deployments and those the
canary's manifests define, never the base's."""

from __future__ import annotations

import pytest

from ansible_collections.canary.istio.plugins.filter.rollback_deployments import rollback_deployments

pytestmark = pytest.mark.unit

OBJECTS = [{"kind": "Deployment", "api_version": "apps/v1", "name": "ratings-v2"},
           {"kind": "Service", "api_version": "v1", "name": "ratings"},
           {"kind": "Deployment", "api_version": "apps/v1", "name": "ratings-v1"}]


def test_a_canary_without_subset_is_found_through_its_manifests():
    assert rollback_deployments([], OBJECTS, ["ratings-v1"]) == ["ratings-v2"]


def test_each_deployment_once_and_never_a_service_or_the_base():
    assert rollback_deployments(["ratings-v2"], OBJECTS, ["ratings-v1"]) == ["ratings-v2"]
    assert rollback_deployments(["ratings-v2"], None, ["ratings-v1"]) == ["ratings-v2"]


def test_not_lists_are_refused():
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="expects lists"):
        rollback_deployments("ratings-v2", OBJECTS)
