"""The filters no role uses any more (issue 23): each still answers as before, and says it is deprecated.

Each call gives one Ansible deprecation warning that names the filter, for canary.istio, with the
removal version; the answers are worked out by hand from each filter's documentation.
"""

from __future__ import annotations

import importlib

import pytest

pytestmark = pytest.mark.unit

REMOVED_IN = "2.0.0"  # the collection's next major version, as for its other deprecations


class Recorder:
    """Stands in for the filter's Display: keeps what ``deprecated`` was told."""

    def __init__(self):
        self.calls = []

    def deprecated(self, msg, version=None, removed=False, date=None, collection_name=None):
        self.calls.append({"msg": msg, "version": version, "removed": removed, "date": date,
                           "collection_name": collection_name})


def call(name, *args, **kwargs):
    """The filter's answer, and the deprecations it gave on the way."""
    module = importlib.import_module(f"ansible_collections.canary.istio.plugins.filter.{name}")
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "display", recorder)
        answer = module.FilterModule().filters()[name](*args, **kwargs)
    return answer, recorder.calls


def assert_deprecated(name, calls):
    assert len(calls) == 1, calls
    assert calls[0]["msg"].startswith(f"canary.istio.{name} is deprecated: the canary_release role no longer calls it.")
    assert "canary.istio.release_run" in calls[0]["msg"]
    assert (calls[0]["version"], calls[0]["collection_name"], calls[0]["removed"], calls[0]["date"]) == (
        REMOVED_IN, "canary.istio", False, None)


def test_analysis_plan_still_plans_and_says_it_is_deprecated():
    # Without an analysis: the shares are the moves, nothing is looked at, and the role would ask
    # once per move.
    plan, calls = call("analysis_plan", [10, 25], 0, None, "auto", [], "v2", False, 30)
    assert plan == {"moves": [10, 25], "shares": [10, 25], "start_share": 0, "decision": "auto", "policy": None,
                    "interactive": False, "step_interval": 30, "looks_before": 0, "looks": 0, "looks_per_step": 0,
                    "share_since": None, "slots": 2}
    assert_deprecated("analysis_plan", calls)


def test_analysis_next_still_answers_and_says_it_is_deprecated():
    plan = {"moves": [10, 25], "shares": [10, 25], "start_share": 0, "decision": None, "policy": None,
            "interactive": False, "step_interval": 30, "looks_before": 0, "looks": 0, "looks_per_step": 0,
            "share_since": None, "slots": 2}
    # Moved to 10% at t=1000 with 30 s between steps: at t=1010 the next move, to 25%, waits 20 s.
    answer, calls = call("analysis_next", plan, [{"share": 10, "at": 1000}], [], 1010)
    assert (answer["action"], answer["share"], answer["wait"]) == ("move", 25, 20)
    assert answer["reason"] == "move 25% of the traffic to the canary"
    assert_deprecated("analysis_next", calls)


def test_analysis_record_still_records_and_says_it_is_deprecated():
    # An analysis that could not run is an error at its share, with what it was asked (numbers from text).
    record, calls = call("analysis_record", {"failed": True, "msg": "cannot reach Prometheus"}, "25",
                         look="3", looks="6", since="", at="1700000000")
    assert record == {"step": 25, "verdict": "error", "msg": "cannot reach Prometheus",
                      "summary": "the analysis could not run", "checks": [], "requests": {}, "evaluated_at": None,
                      "numbers": "", "look": 3, "looks": 6, "since": None, "at": 1700000000.0}
    assert_deprecated("analysis_record", calls)


def test_release_artifacts_still_builds_them_and_says_it_is_deprecated():
    published, calls = call("release_artifacts", "status", "ratings", "shop", "v1", "v2", {"v1": "75", "v2": "25"},
                            None, None, [], {"path": "", "configmap": "canary-report"})
    assert published == {"stage": "status", "service": "ratings", "namespace": "shop", "base": "v1", "canary": "v2",
                         "weights": {"v1": 75, "v2": 25}, "share": 25, "decision": "", "reason": "",
                         "verdicts": [], "report": {"configmap": "canary-report"}}
    assert_deprecated("release_artifacts", calls)


def test_approved_mismatch_still_compares_and_says_it_is_deprecated():
    seen = {"service": "ratings", "namespace": "shop", "canary": "v2"}
    same, calls = call("approved_mismatch", seen, "ratings", "shop", "v2")
    assert same == ""
    assert_deprecated("approved_mismatch", calls)
    other, _calls = call("approved_mismatch", seen, "ratings", "shop", "v3")
    assert other == ("the canary job's artifacts (canary_release_artifacts) describe another release: canary 'v2' "
                     "(this job: 'v3'). The approval was given for that one; launch this job with the same service, "
                     "namespace and canary.")
