"""The canary.istio.interactive lookup: who may be prompted, decided without any prompt."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.collection import ensure_collection_path

ensure_collection_path()
from ansible_collections.canary.istio.plugins.lookup.interactive import controller_is_interactive

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("value,expected", [("1", True), ("yes", True), ("0", False), ("off", False)])
def test_override_wins(value, expected):
    assert controller_is_interactive({"CANARY_ISTIO_INTERACTIVE": value, "AWX_ISOLATED_DATA_DIR": "/x"}) is expected


@pytest.mark.parametrize("environ", [{"AWX_ISOLATED_DATA_DIR": "/runner/artifacts/1"},
                                     {"JOB_ID": "42", "AWX_HOST": "https://awx"}])
def test_awx_and_runner_are_never_interactive(environ):
    assert controller_is_interactive(environ) is False


def test_no_terminal_is_not_interactive():
    code = ("from ansible_collections.canary.istio.plugins.lookup.interactive import controller_is_interactive;"
            "print(controller_is_interactive({}))")
    env = {**os.environ, "PYTHONPATH": str(ensure_collection_path())}
    out = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         env=env, check=True, start_new_session=True)
    assert out.stdout.strip() == "False"
