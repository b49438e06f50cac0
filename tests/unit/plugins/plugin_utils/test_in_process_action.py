"""The in-process path's handling of task arguments and results (plugins/plugin_utils/_in_process.py),
checked against Ansible's own functions: masking must give what ``remove_values`` (what
AnsibleModule.exit_json applies) gives, and the plain copy must keep every value."""

from __future__ import annotations

import pytest
import yaml
from ansible.module_utils.common.parameters import remove_values
from ansible.parsing.yaml.loader import AnsibleLoader

from ansible_collections.canary.istio.plugins.plugin_utils._in_process import hide_secrets, plain

pytestmark = pytest.mark.unit

RESULT = {"changed": True, "msg": "moved", "api_requests": 3,
          "services": [{"name": f"svc-{index:04d}", "after": {"v1": 90, "v2": 10}, "port": 9080,
                        "error": None, "moved": True} for index in range(3)],
          "tags": ("a", "b")}


@pytest.mark.parametrize("secrets", [
    set(),                     # none (remove_values still turns the tuple into a list)
    {"s3cr3t-token"},          # occurs nowhere
    {"svc-0001"},              # a whole string
    {"moved"},                 # part of a string (and a key, which remove_values leaves alone)
    {"908"},                   # inside a number written out
    {"b"},                     # in a tuple
])
def test_masking_gives_what_remove_values_gives(secrets):
    assert hide_secrets(RESULT, secrets) == remove_values(RESULT, secrets)


def test_a_result_without_secrets_is_not_copied():
    result = {key: value for key, value in RESULT.items() if key != "tags"}  # JSON's types only
    assert hide_secrets(result, set()) is result
    assert hide_secrets(result, {"s3cr3t-token", ""}) is result


def test_a_secret_in_the_result_is_masked():
    masked = hide_secrets({"msg": "token abc123 refused", "services": [{"name": "abc123"}]}, {"abc123"})
    assert masked == {"msg": "token ******** refused", "services": [{"name": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}]}


def test_task_arguments_become_plain_values():
    args = yaml.load("services: [{name: reviews, weights: {v1: 90, v2: 10}}]\nratio: 2.5\nrecord: true\n"
                     "note: null\n", Loader=AnsibleLoader)
    copied = plain(args)
    assert copied == {"services": [{"name": "reviews", "weights": {"v1": 90, "v2": 10}}], "ratio": 2.5,
                      "record": True, "note": None}
    seen = []

    def walk(value):
        seen.append(type(value))
        if isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(copied)
    assert set(seen) <= {dict, list, str, int, float, bool, type(None)}, set(seen)
