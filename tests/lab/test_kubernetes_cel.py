"""The Kubernetes CEL extensions the lab adds to cel-python, judged by their upstream examples.

Every row is an example from the documentation comment of the upstream function: cel-go's
``ext/strings.go`` (``Strings``) and Kubernetes' ``staging/src/k8s.io/apiserver/pkg/cel/library/``
``urls.go`` (``URLs``) and ``ip.go`` (``IP``). "error" rows are the ones upstream documents as errors.
"""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from lab.webhook.crd_rules import evaluate

ERROR = object()

STRINGS = [
    ("'hello mellow'.indexOf('')", 0), ("'hello mellow'.indexOf('ello')", 1),
    ("'hello mellow'.indexOf('jello')", -1), ("'hello mellow'.indexOf('', 2)", 2),
    ("'hello mellow'.indexOf('ello', 2)", 7), ("'hello mellow'.indexOf('ello', 20)", ERROR),
    ("['hello', 'mellow'].join()", "hellomellow"), ("['hello', 'mellow'].join(' ')", "hello mellow"),
    ("[].join()", ""), ("[].join('/')", ""),
    ("'hello mellow'.lastIndexOf('')", 12), ("'hello mellow'.lastIndexOf('ello')", 7),
    ("'hello mellow'.lastIndexOf('jello')", -1), ("'hello mellow'.lastIndexOf('ello', 6)", 1),
    ("'hello mellow'.lastIndexOf('ello', -1)", ERROR),
    ("'TacoCat'.lowerAscii()", "tacocat"), ("'TacoCÆt Xii'.lowerAscii()", "tacocÆt xii"),
    ("'hello hello'.replace('he', 'we')", "wello wello"), ("'hello hello'.replace('he', 'we', -1)", "wello wello"),
    ("'hello hello'.replace('he', 'we', 1)", "wello hello"), ("'hello hello'.replace('he', 'we', 0)", "hello hello"),
    ("'hello hello hello'.split(' ')", ["hello", "hello", "hello"]), ("'hello hello hello'.split(' ', 0)", []),
    ("'hello hello hello'.split(' ', 1)", ["hello hello hello"]),
    ("'hello hello hello'.split(' ', 2)", ["hello", "hello hello"]),
    ("'hello hello hello'.split(' ', -1)", ["hello", "hello", "hello"]),
    ("'tacocat'.substring(4)", "cat"), ("'tacocat'.substring(0, 4)", "taco"),
    ("'tacocat'.substring(-1)", ERROR), ("'tacocat'.substring(2, 1)", ERROR),
    ("'  \\ttrim\\n    '.trim()", "trim"),
    ("'TacoCat'.upperAscii()", "TACOCAT"), ("'TacoCÆt Xii'.upperAscii()", "TACOCÆT XII"),
]

URLS = [
    ("isURL('https://user:pass@example.com:80/path?query=val#fragment')", True),
    ("isURL('/absolute-path')", True), ("isURL('https://a:b:c/')", False), ("isURL('../relative-path')", False),
    ("url('https://a:b:c/')", ERROR), ("url('../relative-path')", ERROR),
    ("url('/path').getScheme()", ""), ("url('https://example.com/').getScheme()", "https"),
    ("url('https://example.com:80/').getHost()", "example.com:80"),
    ("url('https://example.com/').getHost()", "example.com"),
    ("url('https://[::1]:80/').getHost()", "[::1]:80"), ("url('https://[::1]/').getHost()", "[::1]"),
    ("url('/path').getHost()", ""),
    ("url('https://example.com:80/').getHostname()", "example.com"),
    ("url('https://127.0.0.1:80/').getHostname()", "127.0.0.1"),
    ("url('https://[::1]:80/').getHostname()", "::1"), ("url('/path').getHostname()", ""),
    ("url('https://example.com:80/').getPort()", "80"), ("url('https://example.com/').getPort()", ""),
    ("url('/path').getPort()", ""),
    ("url('https://example.com/path').getEscapedPath()", "/path"),
    ("url('https://example.com/path with spaces/').getEscapedPath()", "/path%20with%20spaces/"),
    ("url('https://example.com').getEscapedPath()", ""),
    ("url('https://example.com/path?k1=a&k2=b&k2=c').getQuery()", {"k1": ["a"], "k2": ["b", "c"]}),
    ("url('https://example.com/path?key with spaces=value with spaces').getQuery()",
     {"key with spaces": ["value with spaces"]}),
    ("url('https://example.com/path?').getQuery()", {}), ("url('https://example.com/path').getQuery()", {}),
]

IPS = [
    ("isIP('127.0.0.1')", True), ("isIP('::1')", True), ("isIP('127.0.0.256')", False), ("isIP(':::1')", False),
]


def _plain(value: Any) -> Any:
    if isinstance(value, celpy.celtypes.BoolType):
        return bool(value)
    if isinstance(value, celpy.celtypes.IntType):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("expression", "expected"), STRINGS + URLS + IPS, ids=[e for e, _ in STRINGS + URLS + IPS])
def test_upstream_example(expression: str, expected: Any) -> None:
    result = evaluate(expression, {})
    if expected is ERROR:
        assert isinstance(result, celpy.CELEvalError), result
    else:
        assert not isinstance(result, celpy.CELEvalError), result
        assert _plain(result) == expected


def test_a_rule_from_istio_crds_uses_them() -> None:
    # ServiceEntry/WorkloadEntry address rule (crd-all.gen.yaml), evaluated as published.
    rule = next(r for r in _istio_rules() if "substring(7, 8)" in r)
    assert evaluate(rule, "unix:///var/run/app.sock") is not False
    assert evaluate(rule, "unix://relative.sock") == celpy.celtypes.BoolType(False)


def _istio_rules() -> list[str]:
    from lab.webhook.crd_rules import schemas
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            found.extend(v["rule"] for v in node.get("x-kubernetes-validations") or ())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    for (group, _, _), schema in schemas().items():
        if group.endswith("istio.io"):
            walk(schema)
    return found
