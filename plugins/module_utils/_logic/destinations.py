# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A destination is its resolved host plus its subset: how routes are read and how weights name them.

Rules followed (istio/istio):

- ``pilot/pkg/networking/core/route/route.go`` (``applyHTTPRouteDestination``,
  ``processWeightedDestination``): every entry of a route becomes an Envoy cluster named after the
  destination's resolved host and subset (``model.BuildSubsetKey``); a lone entry takes all traffic
  whatever its weight; among several, each takes ``weight / sum`` and a missing weight is 0. Two
  entries for the same host and subset are two weighted clusters of one Envoy cluster: their
  shares add up. A destination without a subset is the whole service (every version).
- Host names resolve as :mod:`hosts` says (``ResolveShortnameToFQDN``), in the namespace of the
  VirtualService that names them, so ``reviews`` and ``reviews.bookinfo.svc.cluster.local`` are one
  destination there and ``reviews.staging.svc.cluster.local`` another service.
- Subset names: ``pkg/config/validation/validation.go`` ``validateSubsetName`` uses
  ``pkg/config/labels`` ``IsDNS1123Label``, whose pattern admits upper-case letters
  (``[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?``, at most 63 characters): ``V2`` is accepted,
  ``v2.1`` and ``v2_1`` are not.

How weights name a destination (the keys of ``weights``, ``before`` and ``after``):

- ``v2``: subset ``v2`` of the host the split moves (when the route has one host, its host);
- ``reviews`` or ``reviews.staging.svc.cluster.local``: that host itself, with no subset;
- ``reviews.staging.svc.cluster.local:v2``: a host and a subset. Readings use this form for every
  destination that has a subset when a route sends to more than one host (and for a subset named
  like its own host), so no two destinations share a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import (
    CanaryConflictError,
    CanaryInputError,
    integer_in_range,
    is_int,
    show,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import Hosts

MAX_SUBSET_NAME_LENGTH = 63
SUBSET_NAME_RE = re.compile(r"[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?")
SUBSET_RULE = ("Istio requires a DNS-1123 label as its pkg/config/labels IsDNS1123Label reads it (validateSubsetName): "
               f"1 to {MAX_SUBSET_NAME_LENGTH} letters of either case, digits or '-', starting and ending with a "
               "letter or digit")
# Weights are int32 in Istio's API.
MAX_ISTIO_WEIGHT = 2**31 - 1
TOTAL_WEIGHT = 100
_LABEL = r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")


def is_subset_name(name: Any) -> bool:
    return isinstance(name, str) and len(name) <= MAX_SUBSET_NAME_LENGTH and bool(SUBSET_NAME_RE.fullmatch(name))


def validate_subset_name(name: Any, what: str = "subset name") -> str:
    """``name`` if Istio accepts it as a subset name, else raise naming the rule."""
    if not is_subset_name(name):
        raise CanaryInputError(f"{what} {show(name)} is not a valid subset name: {SUBSET_RULE} "
                               "(e.g. 'v2', 'V2' or 'v2-1'; not 'v2.1')")
    return name


@dataclass(frozen=True)
class Destination:
    """One destination as Envoy gets it: the resolved host and the subset (None: the whole service)."""

    host: str
    subset: str | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.subset}" if self.subset else self.host


def validate_destination_key(key: Any, what: str = "destination") -> str:
    """``key`` if it can name a destination: a subset, a host, or ``host:subset``; else raise."""
    hint = ("name a destination by its subset ('v2'), its host with no subset ('reviews'), or both "
            "('reviews.staging.svc.cluster.local:v2')")
    if isinstance(key, str) and ":" in key:
        host, _colon, subset = key.rpartition(":")
        if not _HOST_RE.fullmatch(host or ""):
            raise CanaryInputError(f"{what} {show(key)} does not start with a host name before ':'; {hint}")
        validate_subset_name(subset, f"subset of {what} {key!r}")
        return key
    if not isinstance(key, str) or not _HOST_RE.fullmatch(key) or len(key) > 253:
        raise CanaryInputError(f"{what} {show(key)} is not a valid subset name: {SUBSET_RULE}; nor is it a host "
                               f"name. To {hint[0].lower()}{hint[1:]}")
    return key


def _entries(route: Any) -> list[Mapping]:
    destinations = route.get("route") if isinstance(route, Mapping) else None
    return destinations if isinstance(destinations, list) else []


class RouteDestinations:
    """The destinations of one http/tcp/tls route, read as Istio builds them.

    ``route`` must already be validated (:func:`routes.route_destinations`).
    """

    def __init__(self, route: Any, hosts: Hosts | None = None):
        self.hosts = hosts or Hosts()
        self.items: list[Mapping] = _entries(route)
        self.destinations: list[Destination] = []
        self.spelling: dict[str, str] = {}  # resolved host -> how the route spells it first
        for item in self.items:
            target = item["destination"]
            host = self.hosts.fqdn(target["host"])
            self.spelling.setdefault(host, target["host"])
            self.destinations.append(Destination(host, target.get("subset") or None))

    @property
    def service_hosts(self) -> list[str]:
        """The resolved hosts the route names, first named first."""
        return list(self.spelling)

    def key(self, destination: Destination) -> str:
        """How readings name ``destination`` (see the module doc)."""
        spelled = self.spelling.get(destination.host, destination.host)
        if destination.subset is None:
            return spelled
        if len(self.spelling) > 1 or destination.subset in (spelled, destination.host):
            return f"{spelled}:{destination.subset}"
        return destination.subset

    def raw_weights(self, where: str = "the route") -> list[int]:
        """Each entry's weight as Istio reads it (missing: 0); weights Istio refuses raise."""
        weights = []
        for item, destination in zip(self.items, self.destinations):
            weight = item.get("weight")
            if weight is None:
                weight = 0
            elif not (is_int(weight) and 0 <= weight <= MAX_ISTIO_WEIGHT):  # the usual case needs no message
                weight = integer_in_range(
                    weight, f"weight of destination {self.key(destination)!r}", 0, MAX_ISTIO_WEIGHT,
                    f"Istio accepts only integers of zero or more; fix {where} in the VirtualService")
            weights.append(weight)
        return weights

    def shares(self, where: str = "the route") -> dict[Destination, Fraction]:
        """The share of the route's traffic (0..1) each destination receives, duplicates added up;
        weight-0 destinations are kept with 0."""
        weights = self.raw_weights(where)  # refuses what Istio refuses, even for a lone destination
        if len(self.items) == 1:
            return {self.destinations[0]: Fraction(1)}
        total = sum(weights)
        if self.items and total == 0:
            raise CanaryInputError(
                f"the weights of {where} {show(weights)} sum to 0; Istio rejects several destinations whose "
                "weights total 0 (validateHTTPRouteDestinations); fix the VirtualService")
        # Weights of one destination add up first: one exact fraction each (the same value as adding theirs).
        summed: dict[Destination, int] = {}
        for destination, weight in zip(self.destinations, weights):
            summed[destination] = summed.get(destination, 0) + weight
        return {destination: Fraction(weight, total) for destination, weight in summed.items()}

    def percent(self, where: str = "the route") -> dict[str, int | float]:
        """:meth:`shares` in percent, keyed as :meth:`key` names them."""
        return {self.key(destination): _percent(share * TOTAL_WEIGHT)
                for destination, share in self.shares(where).items()}

    def _explicit(self, key: str) -> Destination | None:
        """The destination a key names without help (``host:subset``, a host with a dot or one the route
        names); None for a bare subset name, whose host is the one the split moves."""
        validate_destination_key(key, "destination in weights")
        if ":" in key:
            host, _colon, subset = key.rpartition(":")
            return Destination(self.hosts.fqdn(host), subset)
        host = self.hosts.fqdn(key)
        if not is_subset_name(key) or host in self.spelling:
            return Destination(host, None)
        return None

    def parse_key(self, key: str, moved: str) -> Destination:
        """The destination a weights key names when the split moves resolved host ``moved``."""
        explicit = self._explicit(key)
        if explicit is not None:
            return explicit
        return Destination(moved, None) if self.hosts.fqdn(key) == moved else Destination(moved, key)

    def named_hosts(self, keys: Iterable[str]) -> list[str]:
        """Resolved hosts that ``keys`` name explicitly (``host:subset``, or a host of the route or with a dot)."""
        named: list[str] = []
        for key in keys:
            explicit = self._explicit(key)
            if explicit is not None and explicit.host not in named:
                named.append(explicit.host)
        return named


def _percent(share: Fraction) -> int | float:
    return int(share) if share.denominator == 1 else round(float(share), 2)


def _spelled(hosts: Hosts, host: str) -> str:
    resolved = hosts.fqdn(host)
    return host if resolved == host else f"{host!r} ({resolved})"


def moved_host(view: RouteDestinations, keys: Iterable[str], service_host: str | None, default_host: str | None,
               where: str) -> tuple[str, str, str | None]:
    """The one service host a split moves weight within: ``(resolved host, spelling, note)``.

    - ``service_host`` given: that host; the route must already send to it (or to nothing).
    - Else the host the route's destinations use, when that is one host (``note`` says so when it
      differs from the VirtualService's host, ``default_host``).
    - Else the one host the weights name as ``host:subset``; else refuse.

    Keys naming another host than the moved one are refused: a split never moves traffic from one
    service to another (DESIGN invariant 1b).
    """
    keys = list(keys)
    hosts = view.hosts
    named = view.named_hosts(keys)
    routed = view.service_hosts
    listing = ", ".join(_spelled(hosts, view.spelling[host]) for host in routed)
    note = None
    if service_host:
        moved = hosts.fqdn(service_host)
        spelling = view.spelling.get(moved, service_host)
        if routed and moved not in routed:
            raise CanaryInputError(
                f"{where} sends to {listing}, not to service_host {_spelled(hosts, service_host)}: a split moves "
                "weight only between the destinations of one service host, so it cannot send this route's traffic "
                "to another service. Nothing was changed. Pass the service_host the route sends to, or choose the "
                "route that sends to that service (route_name)")
    elif len(routed) == 1:
        moved, spelling = routed[0], view.spelling[routed[0]]
        if default_host and hosts.fqdn(default_host) != moved:
            note = (f"{where} sends to {_spelled(hosts, spelling)}, not to the VirtualService's host "
                    f"{_spelled(hosts, default_host)}; weights were moved within {moved}, the service the route "
                    "already sends to")
    elif not routed:
        if len(named) > 1:
            raise CanaryInputError(f"weights name several service hosts ({', '.join(named)}); a split moves weight "
                                   "only between the destinations of one service host")
        moved = named[0] if named else hosts.fqdn(default_host)
        spelling = next((key.rpartition(":")[0] for key in keys if ":" in key), None) or default_host
        if not moved or not spelling:
            raise CanaryInputError(f"{where} has no destinations and no service host is known; pass service_host")
    elif len(named) == 1 and named[0] in routed:
        moved, spelling = named[0], view.spelling[named[0]]
    else:
        raise CanaryInputError(
            f"{where} sends to several service hosts ({listing}); a split moves weight only between the "
            "destinations of one of them and leaves the others as they are. Say which with service_host, or name "
            "the destinations as 'host:subset'. Nothing was changed")
    others = [host for host in named if host != moved]
    if others:
        raise CanaryInputError(
            f"weights name {', '.join(others)}, but the split moves weight within {moved}: a split moves weight only "
            "between the destinations of one service host and never sends traffic from one service to another. "
            "Nothing was changed")
    return moved, spelling, note


def refuse_duplicates(view: RouteDestinations, moved: str) -> list[int]:
    """Indexes of entries of ``moved`` that repeat an earlier one and may be merged into it (same fields
    apart from the weight); entries that repeat with other fields (port, headers) are refused."""
    first: dict[Destination, int] = {}
    merged = []
    for index, destination in enumerate(view.destinations):
        if destination.host != moved:
            continue
        if destination not in first:
            first[destination] = index
            continue
        earlier = {k: v for k, v in view.items[first[destination]].items() if k != "weight"}
        later = {k: v for k, v in view.items[index].items() if k != "weight"}
        if earlier != later:
            raise CanaryConflictError(
                f"the route names {view.key(destination)!r} twice (entries #{first[destination]} and #{index}) with "
                "different fields; Istio sends each its own share, but one weight cannot be written for both. "
                "Make the two entries one before changing weights")
        merged.append(index)
    return merged


def routed_subsets(view: RouteDestinations, host: str) -> list[str]:
    """Subsets of resolved ``host`` that the route read as ``view`` gives traffic to (a lone destination, or
    weight above 0): each must exist in the DestinationRule Istio applies to that host."""
    weights = [1] if len(view.items) == 1 else view.raw_weights()
    found: list[str] = []
    for destination, weight in zip(view.destinations, weights):
        if destination.host == host and destination.subset and weight > 0 and destination.subset not in found:
            found.append(destination.subset)
    return found
