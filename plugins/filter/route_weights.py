# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: route_weights
short_description: Read the subset weights of a route out of an Istio VirtualService
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Returns the share of traffic (percent) Istio sends to each destination of one route, as a
    mapping of subset name to share. A destination without a subset is keyed by its host.
  - The input is a whole VirtualService object (as returned by
    M(canary.istio.virtual_service_info)), its C(spec), or a single route.
  - In a VirtualService the route is the one named O(route_name), or else the default route
    of O(host), that is the one http route without C(match) whose destinations all go to
    O(host). Hosts are compared as Istio resolves them - a name without a dot lives in the
    VirtualService's namespace (C(metadata.namespace), or O(namespace)), so V(reviews) matches
    V(reviews.bookinfo.svc.cluster.local) only for a VirtualService in C(bookinfo); a name with a
    dot is taken as written.
  - Weights are read as Istio routes them - relative to their sum (V(900)/V(100) is 90/10), a lone
    destination takes 100 whatever its weight, a missing weight among several counts as 0. Shares
    are whole numbers when exact, else rounded to two decimals.
  - A missing route, several candidate routes, or a malformed route fails the template with
    a message naming the routes present.
positional: _input
options:
  _input:
    description: A VirtualService object, its spec, or one http/tcp/tls route.
    type: dict
    required: true
  host:
    description:
      - Service host whose default http route to read.
      - Required when O(_input) is a VirtualService and O(route_name) is not given.
    type: str
  route_name:
    description: Name of the http route to read, instead of the default route of O(host).
    type: str
  namespace:
    description:
      - Namespace the VirtualService lives in, to resolve short host names when O(_input) is a spec
        or a route. Defaults to the object's C(metadata.namespace).
    type: str
  cluster_domain:
    description: The cluster's DNS domain used to resolve short host names.
    type: str
    default: cluster.local
"""

EXAMPLES = r"""
- name: Show the current split of the reviews default route
  ansible.builtin.debug:
    msg: "{{ reviews_virtual_service | canary.istio.route_weights(host='reviews') }}"
  vars:
    # Usually registered from canary.istio.virtual_service_info; written out here.
    reviews_virtual_service:
      apiVersion: networking.istio.io/v1
      kind: VirtualService
      metadata:
        name: reviews
      spec:
        hosts: [reviews]
        http:
          - name: reviews-testers
            match:
              - headers:
                  end-user:
                    exact: jason
            route:
              - destination: {host: reviews, subset: v2}
          - name: reviews-default
            route:
              - destination: {host: reviews, subset: v1}
                weight: 80
              - destination: {host: reviews, subset: v2}
                weight: 20
  # => {"v1": 80, "v2": 20}

- name: Read a named route (a lone destination without weight counts as 100)
  ansible.builtin.debug:
    msg: "{{ reviews_virtual_service | canary.istio.route_weights(route_name='reviews-testers') }}"
  # => {"v2": 100}
"""

RETURN = r"""
_value:
  description: Mapping of subset name (or host, for a destination without subset) to its share of traffic in percent.
  type: dict
  sample: {"v1": 80, "v2": 20}
"""

from ansible_collections.canary.istio.plugins.plugin_utils._weights_filters import route_weights_filter


class FilterModule:
    """Weights of a VirtualService route."""

    def filters(self):
        return {"route_weights": route_weights_filter}
