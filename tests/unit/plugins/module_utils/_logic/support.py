# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared by the logic tests: a tiny RFC 6902 JSON Patch applier, independent of the code under test, and
Bookinfo-like resources."""

from __future__ import annotations

import copy


class PatchTestFailed(Exception):
    pass


def _pointer_tokens(path):
    assert path.startswith("/"), path
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _resolve(document, tokens):
    for token in tokens:
        document = document[int(token)] if isinstance(document, list) else document[token]
    return document


def apply_patch(document, ops):
    """Apply JSON Patch ``ops`` to a deep copy of ``document`` and return it."""
    document = copy.deepcopy(document)
    for op in ops:
        tokens = _pointer_tokens(op["path"])
        parent = _resolve(document, tokens[:-1])
        last = tokens[-1]
        kind = op["op"]
        if kind == "test":
            try:
                current = _resolve(document, tokens)
            except (KeyError, IndexError) as error:
                raise PatchTestFailed(op["path"]) from error
            if current != op["value"]:
                raise PatchTestFailed(op["path"])
        elif kind == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(op["value"]))
            else:
                parent[last] = copy.deepcopy(op["value"])
        elif kind == "replace":
            if isinstance(parent, list):
                parent[int(last)] = copy.deepcopy(op["value"])
            else:
                if last not in parent:
                    raise KeyError(op["path"])
                parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        else:
            raise AssertionError(f"unexpected op {kind}")
    return document


def dest(subset, weight=None, host="reviews", **extra):
    item = {"destination": {"host": host, "subset": subset}}
    item["destination"].update(extra.pop("destination_extra", {}))
    if weight is not None:
        item["weight"] = weight
    item.update(extra)
    return item


def bookinfo_vs():
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": "reviews",
            "namespace": "bookinfo",
            "resourceVersion": "1234",
            "labels": {"app": "reviews"},
            "annotations": {"owner": "team-a"},
        },
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "name": "jason",
                    "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [dest("v3")],
                },
                {
                    "name": "reviews-default",
                    "retries": {"attempts": 3, "perTryTimeout": "2s"},
                    "fault": {"delay": {"percentage": {"value": 0.1}, "fixedDelay": "5s"}},
                    "route": [
                        dest("v1", 90, destination_extra={"port": {"number": 9080}}, headers={"request": {}}),
                        dest("v2", 10, destination_extra={"port": {"number": 9080}}),
                    ],
                },
            ],
        },
    }


JASON = [{"headers": {"end-user": {"exact": "jason"}}}]
