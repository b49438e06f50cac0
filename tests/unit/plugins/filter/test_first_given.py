"""canary.istio.first_given: an empty answer (as an AWX survey sends an optional question's default) is
not an answer; the next place that gave a value wins."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.filter.first_given import first_given

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("values", "expected"), [
    (["", "http://cluster-a:9090", "http://env:9090"], "http://cluster-a:9090"),
    (["  ", None, [], {}, "http://env:9090"], "http://env:9090"),
    ([" http://given:9090 ", "http://cluster-a:9090"], "http://given:9090"),
    ([0, 5], 0),
    ([False, True], False),
    (["", None], ""),
])
def test_first_given(values, expected):
    assert first_given(values) == expected


def test_default_when_nothing_was_given():
    assert first_given(["", None], "none") == "none"


def test_not_a_list_is_refused_naming_the_value():
    with pytest.raises(AnsibleFilterError, match="expects a list of candidates, got str 'abc'"):
        first_given("abc")
