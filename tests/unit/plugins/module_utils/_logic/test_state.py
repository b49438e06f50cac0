# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Canary state and history annotations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.state import (
    HISTORY_ANNOTATION,
    HISTORY_LIMIT,
    STATE_ANNOTATION,
    append_history,
    encode_canary_state,
    read_canary_state,
)

pytestmark = pytest.mark.unit


def test_state_round_trip():
    text = encode_canary_state("v1", "v2", "20", "reviews-default")
    vs = {"metadata": {"annotations": {STATE_ANNOTATION: text}}}
    state = read_canary_state(vs)
    assert state == {"base": "v1", "canary": "v2", "weight": 20, "route": "reviews-default", "history": []}


@pytest.mark.parametrize(
    "annotations",
    [
        None,
        "junk",
        {},
        {"canary.istio/state": "{not json", "canary.istio/history": "[1, "},
        {"canary.istio/state": "[]", "canary.istio/history": "{}"},
        {"canary.istio/state": '{"base": 3, "weight": true}', "canary.istio/history": '["x", 1]'},
        {"canary.istio/state": 7, "canary.istio/history": None},
        {"canary.istio/state": "[" * 100000},
    ],
)
def test_read_canary_state_tolerates_garbage(annotations):
    vs = {"metadata": {"annotations": annotations}}
    assert read_canary_state(vs) == {
        "base": None,
        "canary": None,
        "weight": None,
        "route": None,
        "history": [],
    }


def test_append_history_appends_and_bounds():
    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    vs = {"metadata": {"annotations": {}}}
    for step in range(25):
        text = append_history(vs, {"v1": 100 - step}, {"v1": 99 - step, "v2": step + 1}, "ops", now)
        vs["metadata"]["annotations"][HISTORY_ANNOTATION] = text
    history = json.loads(vs["metadata"]["annotations"][HISTORY_ANNOTATION])
    assert len(history) == HISTORY_LIMIT
    assert history[0]["from"] == {"v1": 95}, "the five oldest steps are dropped"
    assert history[-1] == {
        "time": "2024-05-06T07:08:09Z",
        "from": {"v1": 76},
        "to": {"v1": 75, "v2": 25},
        "actor": "ops",
    }
    assert read_canary_state(vs)["history"] == history


def test_append_history_converts_to_utc_and_tolerates_garbage():
    tokyo = timezone(timedelta(hours=9))
    vs = {"metadata": {"annotations": {HISTORY_ANNOTATION: "garbage"}}}
    text = append_history(vs, {}, {"v1": 100}, "me", datetime(2024, 1, 1, 9, 0, tzinfo=tokyo), limit=3)
    assert json.loads(text) == [
        {"time": "2024-01-01T00:00:00Z", "from": {}, "to": {"v1": 100}, "actor": "me"}
    ]
    naive = append_history(None, {}, {"v1": 100}, "me", datetime(2024, 1, 1))
    assert json.loads(naive)[0]["time"] == "2024-01-01T00:00:00Z"


def test_append_history_refuses_bad_arguments():
    now = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(CanaryInputError, match="time '2024' is not a datetime"):
        append_history({}, {}, {"v1": 100}, "me", "2024")
    with pytest.raises(CanaryInputError, match="history limit 0"):
        append_history({}, {}, {"v1": 100}, "me", now, limit=0)
    with pytest.raises(CanaryInputError, match="actor None"):
        append_history({}, {}, {"v1": 100}, None, now)
    with pytest.raises(CanaryInputError, match="share of 'v1' 'x'"):
        append_history({}, {}, {"v1": "x"}, "me", now)
    with pytest.raises(CanaryInputError, match="share of 'v1' 101"):
        append_history({}, {"v1": 101}, {"v1": 100}, "me", now)


def test_append_history_records_shares_as_read():
    # "from" is what Istio routed before (route_weights): shares may be fractional, and a destination
    # without subset is keyed by its host.
    now = datetime(2024, 1, 1, tzinfo=UTC)
    before = {"v1": 33.33, "v2": 33.33, "reviews.shop.svc.cluster.local": 33.33}
    step = json.loads(append_history({}, before, {"v1": 100}, "me", now))[-1]
    assert step["from"] == before and step["to"] == {"v1": 100}
