# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which of several places gave a value.

An AWX survey sends every question's default as an extra var, and an optional text question's default
is the empty string: extra vars beat every other variable, so ``canary_release_prometheus_url: ""``
would hide the per-cluster URL a waves inventory sets. An empty answer therefore means "not given",
and the value comes from the next place that gave one.
"""

from __future__ import annotations

from typing import Any


def is_given(value: Any) -> bool:
    """None, an empty or blank string, an empty list or mapping: not given. ``0`` and ``False`` are given."""
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() != ""
    if isinstance(value, (list, tuple, dict)):
        return len(value) > 0
    return True


def first_given(values: list[Any], default: Any = "") -> Any:
    """The first value that was given (strings stripped), else ``default``."""
    for value in values:
        if is_given(value):
            return value.strip() if isinstance(value, str) else value
    return default
