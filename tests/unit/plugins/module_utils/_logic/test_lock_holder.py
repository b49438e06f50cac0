"""Which AWX holder jobs let a stuck release lock be taken over, and where AWX's API is.

Expected values from AWX's own code: the "Red Hat Ansible Automation Platform" credential's injectors
(awx/main/models/credential/__init__.py: CONTROLLER_HOST, CONTROLLER_USERNAME, CONTROLLER_PASSWORD,
CONTROLLER_VERIFY_SSL, CONTROLLER_OAUTH_TOKEN and the same TOWER_* names; verify_ssl rendered from a
boolean input, "True"/"False") and the unified job statuses (successful, failed, error, canceled finish a
job; new, pending, waiting, running do not).
"""

from __future__ import annotations

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic import lock_holder
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("status", ["successful", "failed", "error", "canceled"])
def test_a_finished_holder_job_is_taken_over_naming_the_holder(status):
    why = lock_holder.takeover("awx:bob@localhost", "41", status)
    assert why == f"the holder 'awx:bob@localhost' is AWX job 41, which has finished ({status})"


@pytest.mark.parametrize("status", ["new", "pending", "waiting", "running", None])
def test_a_holder_job_not_known_finished_keeps_the_lock(status):
    assert lock_holder.takeover("awx:bob@localhost", "41", status) is None
    assert lock_holder.takeover("awx:bob@localhost", "", "canceled") is None


def test_controller_from_what_awx_injects():
    injected = {"CONTROLLER_HOST": "https://awx.example.com/", "CONTROLLER_USERNAME": "", "CONTROLLER_PASSWORD": "",
                "CONTROLLER_VERIFY_SSL": "False", "CONTROLLER_OAUTH_TOKEN": "t0ken"}
    controller = lock_holder.controller_from_env(injected)
    assert controller == lock_holder.Controller("https://awx.example.com", "t0ken", "", "", False)
    assert lock_holder.job_url(controller, "41") == "https://awx.example.com/api/v2/jobs/41/"
    older = lock_holder.controller_from_env({"TOWER_HOST": "awx.example.com", "TOWER_USERNAME": "u",
                                             "TOWER_PASSWORD": "p", "TOWER_VERIFY_SSL": "True"})
    assert older == lock_holder.Controller("https://awx.example.com", "", "u", "p", True)
    assert lock_holder.controller_from_env({}) is None


@pytest.mark.parametrize("value", ["0", "-3", "abc", "4 2", 1.5])
def test_a_job_id_that_is_not_one_is_refused_naming_it(value):
    with pytest.raises(CanaryInputError, match=rf"job {value!r} must be an AWX job id"):
        lock_holder.job_id(value)
    assert lock_holder.job_id(42) == "42" and lock_holder.job_id(None) == ""
