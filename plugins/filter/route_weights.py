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
  - Returns the weights of one route as a mapping of subset name to weight. A destination
    without a subset is keyed by its host.
  - The input is a whole VirtualService object (as returned by
    M(canary.istio.virtual_service_info)), its C(spec), or a single route.
  - In a VirtualService the route is the one named O(route_name), or else the default route
    of O(host), that is the one http route without C(match) whose destinations all go to
    O(host). A short host such as V(reviews) matches V(reviews.default.svc.cluster.local).
  - A lone destination without weight counts as 100. Among several destinations a missing
    weight counts as 0, as Istio reads it.
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
  description: Mapping of subset name (or host, for a destination without subset) to integer weight.
  type: dict
  sample: {"v1": 80, "v2": 20}
"""

from ansible_collections.canary.istio.plugins.plugin_utils._weights_filters import route_weights_filter


class FilterModule:
    """Weights of a VirtualService route."""

    def filters(self):
        return {"route_weights": route_weights_filter}
