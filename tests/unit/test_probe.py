"""Pure logic of the traffic probe: Wilson interval, classification, expectations."""

from __future__ import annotations

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._probe import (
    classify,
    compile_labels,
    validate_expect,
    wilson_interval,
)

pytestmark = pytest.mark.unit


def test_wilson_interval_known_values():
    # 30 of 100: the textbook Wilson 95% interval is about 21.9% .. 39.6%.
    low, high = wilson_interval(30, 100)
    assert low == pytest.approx(21.9, abs=0.1) and high == pytest.approx(39.6, abs=0.1)
    assert wilson_interval(0, 50)[0] == 0.0 and wilson_interval(0, 50)[1] < 8
    assert wilson_interval(50, 50)[1] == 100.0 and wilson_interval(50, 50)[0] > 92
    assert wilson_interval(0, 0) == (0.0, 100.0)


def test_interval_narrows_with_more_requests():
    small = wilson_interval(50, 100)
    large = wilson_interval(500, 1000)
    assert large[1] - large[0] < small[1] - small[0]


def test_first_matching_label_wins_in_given_order():
    labels = compile_labels({"v3": 'color="red"', "v2": 'color="black"', "v1": "reviews"})
    assert classify('<div class="reviews"><span color="red">', labels) == "v3"
    assert classify('<div class="reviews"><span color="black">', labels) == "v2"
    assert classify('<div class="reviews">', labels) == "v1"
    assert classify("<html>", labels) == "unmatched"


@pytest.mark.parametrize("labels,message", [
    ({}, "must be a mapping of label to regex"),
    ({"v2": "("}, "does not compile"),
    ({"errors": "x"}, "other than 'unmatched' and 'errors'"),
    ({"v2": ""}, "needs a regex string"),
])
def test_bad_labels(labels, message):
    with pytest.raises(CanaryInputError, match=message):
        compile_labels(labels)


@pytest.mark.parametrize("expect,message", [
    ({"v9": 10}, "labels do not define"),
    ({"v2": 150}, "between 0 and 100"),
    ({"v2": "abc"}, "between 0 and 100"),
    ({"v2": True}, "between 0 and 100"),
])
def test_bad_expect(expect, message):
    with pytest.raises(CanaryInputError, match=message):
        validate_expect(expect, compile_labels({"v2": "x"}))
