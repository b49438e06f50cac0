"""canary.istio.release_artifacts and approved_mismatch: what a stage leaves for the next AWX workflow nodes."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.filter.approved_mismatch import approved_mismatch
from ansible_collections.canary.istio.plugins.filter.release_artifacts import release_artifacts

pytestmark = pytest.mark.unit

RECORD = {"step": 10, "look": 2, "verdict": "fail", "summary": "request-success-rate failed",
          "checks": [{"name": "request-success-rate", "verdict": "fail", "canary": {"value": 80.0},
                      "base": {"value": 99.9}, "min": 99, "max": None,
                      "bounds": {"canary": {"low": 71.2, "high": 87.3}}}]}


def test_each_verdict_keeps_its_share_values_and_bounds():
    published = release_artifacts("release", "ratings", "shop", "v1", "v2", {"v1": 90, "v2": 10}, "rollback",
                                  "the analysis failed", [RECORD], {"path": "/tmp/r.html", "configmap": ""})
    assert published["share"] == 10 and published["weights"] == {"v1": 90, "v2": 10}
    assert published["verdicts"] == [{
        "share": 10, "look": 2, "verdict": "fail", "summary": "request-success-rate failed",
        "checks": [{"name": "request-success-rate", "verdict": "fail", "canary": 80.0, "base": 99.9, "min": 99,
                    "max": None, "bounds": {"canary": {"low": 71.2, "high": 87.3}}}]}]
    assert published["report"] == {"path": "/tmp/r.html"}  # empty locations left out


def test_an_unknown_stage_is_refused_naming_it():
    with pytest.raises(AnsibleFilterError, match="stage 'deploy' must be release, set_ratio"):
        release_artifacts("deploy", "ratings", "shop", "v1", "v2", {})


def test_a_promote_job_acts_only_on_the_release_the_approver_saw():
    seen = {"service": "ratings", "namespace": "shop", "canary": "v2"}
    assert approved_mismatch(seen, "ratings", "shop", "v2") == ""
    assert approved_mismatch(None, "ratings", "shop", "v2") == ""
    assert approved_mismatch(seen, "ratings", "prod", "v2").startswith(
        "the canary job's artifacts (canary_release_artifacts) describe another release: namespace 'shop' "
        "(this job: 'prod')")
