"""The Kubernetes CEL extension functions that CRD rules use and cel-python lacks.

A kube-apiserver evaluates ``x-kubernetes-validations`` with cel-go plus extension libraries: cel-go's
``ext.Strings`` and Kubernetes' own ``library.URLs`` and ``library.IP``
(``k8s.io/apiserver/pkg/cel/library``). cel-python has the standard CEL functions (``size``,
``matches``, ``startsWith``, ``duration``, the macros …) but none of these. Each function below
follows the documentation comment of its upstream function; ``tests/lab/test_kubernetes_cel.py``
checks them against the examples given there.

cel-python calls a member function ``x.f(a)`` as ``f(x, a)``; an error is returned as a
``CELEvalError`` value (CEL's error propagation), never raised.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from celpy import CELEvalError, celtypes


def _error(text: str) -> CELEvalError:
    return CELEvalError(text)


# --- cel-go ext.Strings ----------------------------------------------------------------------

def _substring(text: Any, start: Any, end: Any = None) -> Any:
    """``'tacocat'.substring(4) == 'cat'``, ``'tacocat'.substring(0, 4) == 'taco'`` (code points)."""
    if not isinstance(text, str):
        return _error(f"no such overload: substring({type(text).__name__})")
    start = int(start)
    end = len(text) if end is None else int(end)
    if start < 0 or start > len(text):
        return _error(f"index out of range: {start}")
    if end < 0 or end > len(text):
        return _error(f"index out of range: {end}")
    if start > end:
        return _error(f"invalid substring range. start: {start}, end: {end}")
    return celtypes.StringType(text[start:end])


def _split(text: Any, separator: Any, limit: Any = None) -> Any:
    """``'hello hello hello'.split(' ') == ['hello', 'hello', 'hello']``; a limit as Go's SplitN."""
    if not isinstance(text, str) or not isinstance(separator, str):
        return _error("no such overload: split")
    count = -1 if limit is None else int(limit)
    if count == 0:
        return celtypes.ListType([])
    if separator == "":
        parts = list(text) if count < 0 else list(text[:count - 1]) + ([text[count - 1:]] if text[count - 1:] else [])
    else:
        parts = text.split(separator) if count < 0 else text.split(separator, count - 1)
    return celtypes.ListType([celtypes.StringType(part) for part in parts])


def _lower_ascii(text: Any) -> Any:
    return celtypes.StringType("".join(c.lower() if c.isascii() else c for c in text))


def _upper_ascii(text: Any) -> Any:
    return celtypes.StringType("".join(c.upper() if c.isascii() else c for c in text))


def _trim(text: Any) -> Any:
    return celtypes.StringType(text.strip())


def _replace(text: Any, old: Any, new: Any, limit: Any = None) -> Any:
    return celtypes.StringType(text.replace(old, new, -1 if limit is None else int(limit)))


def _index_of(value: Any, needle: Any, offset: Any = None) -> Any:
    """ext.Strings' ``'hello mellow'.indexOf('ello') == 1`` and ext.Lists' ``[1, 2, 2].indexOf(2) == 1``."""
    if isinstance(value, str):
        start = 0 if offset is None else int(offset)
        if start < 0 or start > len(value):
            return _error(f"index out of range: {start}")
        return celtypes.IntType(value.find(needle, start))
    if isinstance(value, list):
        return celtypes.IntType(next((i for i, item in enumerate(value) if item == needle), -1))
    return _error("no such overload: indexOf")


def _last_index_of(value: Any, needle: Any, offset: Any = None) -> Any:
    """``'hello mellow'.lastIndexOf('ello', 6) == 1``: offset is the last start considered."""
    if isinstance(value, str):
        if offset is None:
            return celtypes.IntType(value.rfind(needle))
        last = int(offset)
        if last < 0 or last > len(value):
            return _error(f"index out of range: {last}")
        return celtypes.IntType(value.rfind(needle, 0, last + len(needle)))
    if isinstance(value, list):
        return celtypes.IntType(next((i for i in range(len(value) - 1, -1, -1) if value[i] == needle), -1))
    return _error("no such overload: lastIndexOf")


def _join(values: Any, separator: Any = "") -> Any:
    return celtypes.StringType(str(separator).join(str(v) for v in values))


# --- Kubernetes library.URLs -----------------------------------------------------------------

class URL(celtypes.MapType):
    """The opaque ``kubernetes.URL`` type: the parsed parts of a URL (Go's net/url.URL)."""

    def __init__(self, scheme: str, host: str, path: str, raw_query: str) -> None:
        super().__init__({})
        self.scheme, self.host, self.path, self.raw_query = scheme, host, path, raw_query


# Go's url.ParseRequestURI: an absolute URI ("scheme:...") or an absolute path ("/..."), no fragment
# handling needed since it is checked before the lenient parse. A scheme is a letter, then
# letters, digits, "+", "-" or ".".
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):(.*)$", re.DOTALL)


def _go_url_split(text: str) -> tuple[str, str, str, str] | None:
    """(scheme, host, path, query) as Go's ``url.ParseRequestURI`` reads them, or None when it errs."""
    if text == "" or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return None
    rest, _, query = text.partition("?")
    scheme = ""
    match = _SCHEME_RE.match(rest)
    if match:
        scheme, rest = match.group(1).lower(), match.group(2)
    elif rest.startswith(":"):
        return None  # "missing protocol scheme"
    if not scheme and not rest.startswith("/"):
        return None  # "invalid URI for request"
    host = ""
    if scheme and not rest.startswith("/"):
        return (scheme, "", rest, query)  # opaque, as "mailto:x"
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        path = slash + path
        userinfo, at, host = authority.rpartition("@")
        if at and not all(c.isalnum() or c in _USERINFO_CHARACTERS for c in userinfo):
            return None  # "net/url: invalid userinfo"
        if not _valid_go_host(host) or not _valid_escapes(host):
            return None
        rest = path
    if not _valid_escapes(rest):
        return None  # "invalid URL escape"
    return (scheme, host, rest, query)


# net/url validUserinfo: unreserved and sub-delims, ":" and "%" (and "@", already split off).
_USERINFO_CHARACTERS = set("-._:~!$&'()*+,;=%@")
# net/url shouldEscape(c, encodeHost) lets these through in a host besides letters and digits.
_HOST_CHARACTERS = set("-_.~!$&'()*+,;=:[]<>\"%")


def _valid_escapes(text: str) -> bool:
    """Go's unescape: every "%" is followed by two hex digits."""
    index = text.find("%")
    while index >= 0:
        pair = text[index + 1:index + 3]
        if len(pair) < 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
            return False
        index = text.find("%", index + 3)
    return True


def _valid_go_host(host: str) -> bool:
    """Go's net/url parseHost: "[v6]" with an optional ":port", else at most one ":" before a port."""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return False
        port = host[end + 1:]
        return port in ("", ":") or (port.startswith(":") and port[1:].isdigit())
    if any(not (c.isalnum() or c in _HOST_CHARACTERS) for c in host if ord(c) < 0x80):
        return False
    if ":" in host:
        name, _, port = host.rpartition(":")
        return ":" not in name and (port == "" or port.isdigit())
    return True


def _url(text: Any) -> Any:
    parts = _go_url_split(str(text))
    if parts is None:
        return _error(f"URL parse error during conversion from string: parse {text!r}: invalid URI")
    return URL(*parts)


def _is_url(text: Any) -> Any:
    return celtypes.BoolType(_go_url_split(str(text)) is not None)


def _need_url(value: Any, name: str) -> Any:
    return value if isinstance(value, URL) else _error(f"no such overload: {name}")


def _get_scheme(value: Any) -> Any:
    url = _need_url(value, "getScheme")
    return url if isinstance(url, CELEvalError) else celtypes.StringType(url.scheme)


def _get_host(value: Any) -> Any:
    url = _need_url(value, "getHost")
    return url if isinstance(url, CELEvalError) else celtypes.StringType(url.host)


def _hostname_and_port(host: str) -> tuple[str, str]:
    if host.startswith("["):
        end = host.find("]")
        return host[1:end], host[end + 2:] if host[end + 1:end + 2] == ":" else ""
    name, colon, port = host.rpartition(":")
    return (name, port) if colon else (host, "")


def _get_hostname(value: Any) -> Any:
    url = _need_url(value, "getHostname")
    return url if isinstance(url, CELEvalError) else celtypes.StringType(_hostname_and_port(url.host)[0])


def _get_port(value: Any) -> Any:
    url = _need_url(value, "getPort")
    return url if isinstance(url, CELEvalError) else celtypes.StringType(_hostname_and_port(url.host)[1])


def _get_escaped_path(value: Any) -> Any:
    url = _need_url(value, "getEscapedPath")
    if isinstance(url, CELEvalError):
        return url
    return celtypes.StringType(urllib.parse.quote(urllib.parse.unquote(url.path), safe="/!$&'()*+,;=:@-._~"))


def _get_query(value: Any) -> Any:
    url = _need_url(value, "getQuery")
    if isinstance(url, CELEvalError):
        return url
    result: dict[Any, Any] = {}
    for key, item in urllib.parse.parse_qsl(url.raw_query, keep_blank_values=True):
        result.setdefault(celtypes.StringType(key), celtypes.ListType()).append(celtypes.StringType(item))
    return celtypes.MapType(result)


# --- Kubernetes library.IP -------------------------------------------------------------------

def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's netip.ParseAddr, less zones and IPv4-mapped IPv6 addresses (parseIPAddr)."""
    if "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)  # refuses IPv4 octets with leading zeros, as netip does
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return None
    return address


def _is_ip(text: Any) -> Any:
    return celtypes.BoolType(_parse_ip(str(text)) is not None)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # cel-go ext.Strings (the parts CRD rules use, and their neighbours)
    "substring": _substring, "split": _split, "lowerAscii": _lower_ascii, "upperAscii": _upper_ascii,
    "trim": _trim, "replace": _replace, "indexOf": _index_of, "lastIndexOf": _last_index_of, "join": _join,
    # Kubernetes library.URLs
    "url": _url, "isURL": _is_url, "getScheme": _get_scheme, "getHost": _get_host,
    "getHostname": _get_hostname, "getPort": _get_port, "getEscapedPath": _get_escaped_path,
    "getQuery": _get_query,
    # Kubernetes library.IP (the string check the CRDs use)
    "isIP": _is_ip,
}
