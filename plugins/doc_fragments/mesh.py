# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How service hosts and DestinationRules are resolved, as Istio does it.
    DOCUMENTATION = r"""
options:
  cluster_domain:
    description:
      - The cluster's DNS domain. A host without a dot, such as V(reviews), means
        C(reviews.<namespace of the VirtualService or DestinationRule that names it>.svc.<cluster_domain>),
        as Istio resolves it; a host with a dot is taken as written.
    type: str
    default: cluster.local
  root_namespace:
    description:
      - The mesh's root configuration namespace (Istio's C(rootNamespace) mesh setting). Istio looks for
        the DestinationRule of a host in the VirtualService's namespace, then in the service's namespace,
        then here.
    type: str
    default: istio-system
"""
