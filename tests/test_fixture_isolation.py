"""Suites with their own lab never leak it into the shared fixtures (a regression seen in CI)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.lab


def test_shared_kube_and_lab_state_are_the_same_lab(lab_state, kube):
    assert kube.port == int(lab_state["server"].rsplit(":", 1)[1])
