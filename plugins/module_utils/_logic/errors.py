# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The input error every piece of logic raises, and the small checks that raise it.

Nothing in ``_logic`` talks to Kubernetes or imports Ansible: modules, filters and service
code call these functions, and unit tests call them directly. Every function refuses bad
input with :class:`CanaryInputError` (a ``ValueError``) whose message names the bad value,
the rule it broke and what to do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

# An integer, optionally written with a zero fraction ("50.0") because templating
# arithmetic produces such values.
_INTEGER_TEXT_RE = re.compile(r"[+-]?[0-9]+(\.0*)?")
# Longer digit strings are out of any range we accept; refusing them early also keeps
# int() away from Python's limit on huge integer strings.
MAX_NUMBER_DIGITS = 30
_SHOW_LIMIT = 120


class CanaryInputError(ValueError):
    """Input that breaks a rule; the message names the value, the rule and the remedy."""


class CanaryConflictError(CanaryInputError):
    """The request is well formed but contradicts the resource as it stands.

    Examples: two http routes carry the requested name, or a header route would take
    the name of the default route. A subclass of :class:`CanaryInputError` so callers
    that refuse bad input before any write catch both with one ``except``.
    """


# --------------------------------------------------------------------------------------
# small helpers


def show(value: Any) -> str:
    """A short, unambiguous rendering of a value for error messages."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<unprintable {type(value).__name__}>"
    if len(text) > _SHOW_LIMIT:
        text = text[: _SHOW_LIMIT - 3] + "..."
    return text


def json_copy(value: Any) -> Any:
    """A copy of JSON data (mappings, lists, scalars) sharing nothing mutable with ``value``: what
    ``copy.deepcopy`` gives for such data, several times faster (no memo; every mapping becomes a
    plain dict, every list or tuple a list)."""
    if isinstance(value, Mapping):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_copy(item) for item in value]
    return value


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer_in_range(value: Any, what: str, low: int, high: int, hint: str) -> int:
    """Return ``value`` as an int within ``low..high`` or raise CanaryInputError.

    Accepts ints, integral floats (50.0) and strings of such numbers (" 30 ", "50.0"),
    because Ansible templating yields strings and floats. Refuses booleans, fractions,
    NaN/infinity, empty strings and everything else.
    """
    number = None
    if is_int(value):
        number = value
    elif isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if _INTEGER_TEXT_RE.fullmatch(text):
            digits = text.lstrip("+-").split(".")[0].lstrip("0")
            if len(digits) <= MAX_NUMBER_DIGITS:
                number = int(text.split(".")[0])
            else:
                number = high + 1
    if number is None or not low <= number <= high:
        raise CanaryInputError(f"{what} {show(value)} is not an integer between {low} and {high}; {hint}")
    return number


def require_text(value: Any, what: str, hint: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CanaryInputError(f"{what} {show(value)} is not a non-blank string; {hint}")
    return value


def require_mapping(value: Any, what: str, hint: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise CanaryInputError(f"{what} {show(value)} is not a mapping; {hint}")
    return value


def pairs(first: list, second: list) -> list[tuple]:
    """Pairs of two equally long lists (``zip(strict=True)`` needs Python 3.10)."""
    if len(first) != len(second):
        raise AssertionError("lists of different lengths")
    return [(first[index], second[index]) for index in range(len(first))]
