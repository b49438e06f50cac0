"""Pure logic of the traffic probe: Wilson interval, classification, expectations."""

from __future__ import annotations

import itertools
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._probe import (
    classify,
    compile_labels,
    confidence_option,
    progress_line,
    summary_line,
    validate_confidence_fraction,
    validate_expect,
    wilson_interval,
    z_value,
)
from ansible_collections.canary.istio.plugins.modules import traffic_probe
from tests.helpers.split_checks import MAX_FALSE_FAILURE, false_failure_rate, no_answer_rate

# Two-sided standard normal quantiles from a published table (e.g. NIST/SEMATECH e-Handbook of
# Statistical Methods, 1.3.6.7.1), not from the code under test.
PUBLISHED_Z = {0.95: 1.9600, 0.99: 2.5758, 0.999: 3.2905, 0.9999: 3.8906}

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


@pytest.mark.parametrize("confidence", sorted(PUBLISHED_Z))
def test_z_matches_the_published_table_and_the_normal_tail(confidence):
    z = z_value(confidence)
    assert z == pytest.approx(PUBLISHED_Z[confidence], abs=5e-5)
    # The two tails beyond +-z hold 1 - confidence of the normal distribution (erfc, not inv_cdf).
    assert math.erfc(z / math.sqrt(2)) == pytest.approx(1 - confidence, rel=1e-9)


def _score_bounds(successes: int, total: int, z: float) -> tuple[float, float]:
    """The Wilson interval by its definition, found by bisection: every p with |share - p| <= z*sqrt(p(1-p)/n)."""
    share = successes / total

    def outside(p: float) -> bool:
        return (share - p) ** 2 > z * z * p * (1 - p) / total

    def edge(inside: float, out: float) -> float:
        for _round in range(200):
            middle = (inside + out) / 2
            inside, out = (inside, middle) if outside(middle) else (middle, out)
        return inside

    return edge(share, 0.0) * 100, edge(share, 1.0) * 100


@pytest.mark.parametrize("successes,total", [(465, 1000), (300, 1000), (50, 400), (7, 20), (998, 1000)])
def test_interval_at_9999_matches_the_score_interval_with_the_published_z(successes, total):
    low, high = wilson_interval(successes, total, 0.9999)
    want_low, want_high = _score_bounds(successes, total, PUBLISHED_Z[0.9999])
    # Rounded outwards to two decimals; the table's z has four.
    assert want_low - 0.02 <= low <= want_low and want_high <= high <= want_high + 0.02


def test_the_465_of_1000_that_failed_make_test_no_longer_fails_a_50_percent_expectation():
    # The flaky run: 465 of 1000 answers from v2 at a 50% split. At 95% the interval excluded 50.
    low95, high95 = wilson_interval(465, 1000, 0.95)
    assert (low95, high95) == (pytest.approx(43.42, abs=0.02), pytest.approx(49.61, abs=0.02))
    assert not low95 <= 50 <= high95
    low, high = wilson_interval(465, 1000, 0.9999)
    assert low <= 50 <= high
    want_low, want_high = _score_bounds(465, 1000, PUBLISHED_Z[0.9999])
    assert (low, high) == (pytest.approx(want_low, abs=0.02), pytest.approx(want_high, abs=0.02))
    assert (low, high) == (40.46, 52.65)


def test_a_split_far_off_still_fails_at_9999():
    # A canary stuck at 30% (or a broken route at 0%) is still caught by a 50% expectation.
    assert not wilson_interval(300, 1000, 0.9999)[1] >= 50
    assert wilson_interval(0, 1000, 0.9999) == (0.0, pytest.approx(1.49, abs=0.02))


def test_every_answer_from_one_label_includes_100():
    assert wilson_interval(200, 200, 0.9999)[1] == 100.0 and wilson_interval(0, 200, 0.9999)[0] == 0.0


def test_false_failure_rate_of_the_demo_check_before_and_after():
    # 1000 answers at a fair 50% split: the demo's check at 95% failed about one run in 19.
    def rate(confidence):
        return false_failure_rate(1000, {"v2": 0.5, "v1": 0.5}, lambda k, n: wilson_interval(k, n, confidence),
                                  {"v2": 50})
    assert 0.04 < rate(0.95) < 0.06
    assert rate(0.9999) <= MAX_FALSE_FAILURE


def test_false_failure_rate_by_hand():
    # Two fair coin flips, a check passing only on one head: fails on HH and TT, probability 1/2.
    def one_head(k, n):
        return (0.5, 0.5) if k == 1 else (0.9, 1.0)
    assert false_failure_rate(2, {"h": 0.5, "t": 0.5}, one_head, {"h": 0.5}) == pytest.approx(0.5)
    assert no_answer_rate(3, 0.5) == pytest.approx(0.125)


@pytest.mark.parametrize("check,value,message", [
    (validate_confidence_fraction, 95, r"a fraction: 0.95, not 95"),
    (validate_confidence_fraction, 99.99, r"a fraction: 0.9999, not 99.99"),
    (validate_confidence_fraction, 1, "from 0.5 up to, not including, 1"),
    (validate_confidence_fraction, 0.2, "from 0.5 up to"),
    (validate_confidence_fraction, "abc", "from 0.5 up to"),
    (validate_confidence_fraction, True, "from 0.5 up to"),
    # The option is a percent; below 1 is the old fraction form, checked as a fraction.
    (confidence_option, 100, "must be a percentage from 50 up to, not including, 100"),
    (confidence_option, 20, "must be a percentage from 50"),
    (confidence_option, 0.2, "from 0.5 up to"),
    (confidence_option, "abc", "must be a percentage"),
    (confidence_option, True, "must be a percentage"),
])
def test_bad_confidence(check, value, message):
    with pytest.raises(CanaryInputError, match=message):
        check(value)


# The option is a percent, as in canary_analysis and mesh_topology; the old fraction form (below 1)
# is still read as a fraction (the module warns that it is deprecated).
@pytest.mark.parametrize("value,level,fraction_form", [
    (95, 0.95, False), (99.99, 0.9999, False), (50, 0.5, False),
    (0.95, 0.95, True), (0.9999, 0.9999, True),
])
def test_the_confidence_option_is_a_percent(value, level, fraction_form):
    assert confidence_option(value) == (pytest.approx(level, abs=1e-12), fraction_form)


def test_confidence_inside_expect_points_to_the_option():
    with pytest.raises(CanaryInputError, match=r"option of its own, beside expect \(confidence: 99.99\)"):
        validate_expect({"v2": 50, "confidence": 0.9999}, compile_labels({"v2": "x"}))


def test_progress_and_verdict_lines_state_the_confidence():
    line = progress_line({"done": 500, "total": 1000, "errors": 0, "shares": {"v2": 46.5, "unmatched": 0.0},
                          "confidence": 99.99, "expect": {"v2": 50.0}, "intervals": {"v2": [40.46, 52.65]}})
    assert line.endswith("; 99.99% intervals: v2 40.46-52.65% (expected 50%)"), line
    result = {"ok": 1000, "errors": 0, "shares": {"v2": 46.5}, "confidence": 99.99, "expect": {"v2": 50.0},
              "intervals": {"v2": [40.46, 52.65]}, "unexpected": {}}
    assert summary_line(result).endswith("99.99% intervals: v2 40.46-52.65% (expected 50%) - every expected "
                                         "share inside")


@pytest.fixture
def thirty_percent_v2():
    """Answers three requests in ten with a v2 page, the others with a v1 page, by a counter."""
    counter = itertools.count()

    class Pages(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = b"v2" if next(counter) % 10 < 3 else b"v1"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _execute(url, confidence):
    """traffic_probe's execute as a task runs it, with a context that records deprecations."""
    warnings = []
    params = {**{name: option.get("default") for name, option in traffic_probe.ARGUMENT_SPEC.items()},
              "url": url, "labels": {"v2": "v2", "v1": "v1"}, "expect": {"v2": 30}, "confidence": confidence}
    ctx = SimpleNamespace(params=params, progress=None, deprecate=lambda message, version: warnings.append(message))
    return traffic_probe.execute(ctx), warnings


@pytest.mark.parametrize("written,stated,deprecated", [
    (95, 95.0, False), (99.99, 99.99, False), (99.999, 99.999, False),
    (0.9999, 99.99, True),  # the old fraction form: read as before, stated in percent like the others
])
def test_the_result_states_the_confidence_in_percent_as_the_option_takes_it(thirty_percent_v2, written, stated,
                                                                            deprecated):
    result, warnings = _execute(thirty_percent_v2, written)
    assert result["confidence"] == stated
    assert result["counts"] == {"v2": 30, "v1": 70, "unmatched": 0} and result["unexpected"] == {}
    assert bool(warnings) is deprecated
    assert f"{stated:g}% intervals: v2 " in summary_line(result)
