"""How far the alerting rules' normal approximation strays from the analysis' exact test (docs/events.md).

The rule fires when z = (x_c - x*pi0 - 0.5) / sqrt(x*pi0*(1-pi0)) > 2.326 with x >= 10 bad requests
(test_protect_on_alerts checks that Prometheus records exactly this z). Its false-alarm rate for a
canary exactly as good as its base is summed exactly over Binomial(x, pi0); the analysis' exact
conditional test (evidence.ratio_bounds, one look at 1 %) is the reference it approximates.
"""

from __future__ import annotations

import math

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.evidence import ratio_bounds

pytestmark = pytest.mark.unit

Z_CRITICAL = 2.326
MIN_BAD = 10


def fires(canary_bad: int, canary_requests: int, base_bad: int, base_requests: int) -> bool:
    together = canary_bad + base_bad
    share = canary_requests / (canary_requests + base_requests)
    if together < MIN_BAD:
        return False
    return (canary_bad - together * share - 0.5) / math.sqrt(together * share * (1 - share)) > Z_CRITICAL


def false_alarm_rate(together: int, share: float) -> float:
    """P(the rule fires) when the canary's share of the bad requests is its share of the requests."""
    canary_requests = round(share * 10**6)
    return sum(math.exp(math.lgamma(together + 1) - math.lgamma(bad + 1) - math.lgamma(together - bad + 1)
                        + bad * math.log(share) + (together - bad) * math.log1p(-share))
               for bad in range(together + 1)
               if fires(bad, canary_requests, together - bad, 10**6 - canary_requests))


@pytest.mark.parametrize(("share", "worst_percent"), [(0.01, 3.0), (0.05, 2.5), (0.1, 1.9), (0.2, 1.5), (0.5, 1.0)])
def test_the_false_alarm_rate_per_evaluation_stays_near_one_percent(share: float, worst_percent: float):
    worst = max(false_alarm_rate(together, share) for together in range(MIN_BAD, 121))
    assert worst * 100 <= worst_percent
    # With plenty of bad requests the approximation settles at the nominal 1 %.
    assert false_alarm_rate(2000, share) * 100 == pytest.approx(1.0, abs=0.35)


def test_the_rule_and_the_exact_test_agree_on_almost_every_count():
    agree = total = rule_only = 0
    for share in (0.05, 0.1, 0.25, 0.5):
        canary_requests = round(1000 * share)
        base_requests = 1000 - canary_requests
        for together in range(MIN_BAD, 51):
            for bad in range(together + 1):
                rule = fires(bad, canary_requests, together - bad, base_requests)
                exact = ratio_bounds(bad, canary_requests, together - bad, base_requests, 0.01, 0.01)[0] > 1.0
                total += 1
                agree += rule == exact
                rule_only += rule and not exact
    # 5,084 counts: the rule fires on 55 the exact test does not fail (small shares, few bad requests)
    # and misses 3 it fails.
    assert total == 5084 and agree == total - 58 and rule_only == 55
