"""Tokens and keys never show: not at -vvvv, not in task results, not in what is stored."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import FaultLab
from tests.reliability.test_faults import VS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_secrets_never_appear_in_output_at_any_verbosity(fault_lab: FaultLab, base_namespace: str):
    tokens = list(fault_lab.state["tokens"].values())
    rc, out, results = fault_lab.run("canary.yml", {"canary_namespace": base_namespace, "canary_release_ratio": 20,
                                                    "canary_release_decision": "hold"}, verbosity="-vvvv")
    assert rc == 0, out[-3000:]
    text = out + repr(results)
    assert not any(token in text for token in tokens)
    vs = fault_lab.get(VS.format(ns=base_namespace))
    assert not any(token in repr(vs) for token in tokens)
