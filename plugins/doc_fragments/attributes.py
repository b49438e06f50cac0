# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  action_group:
    description:
      - Use C(group/canary.istio.istio) in C(module_defaults) to set connection options once.
      - The group's connection options (the Kubernetes ones such as C(kubeconfig), C(context) and C(host), and
        C(api_version)) may be set for every module of the group. A module that does not use one of them -
        M(canary.istio.canary_analysis) and M(canary.istio.mesh_topology), which read only Prometheus, use
        none - gets it dropped by its action plugin before it runs, and does not list it among its options.
        Run without the action plugin, such a module refuses the option.
    support: full
    membership:
      - canary.istio.istio
"""

    WRITE = r"""
options: {}
attributes:
  check_mode:
    description:
      - Can run in check mode; the API server validates the change with a server-side dry run and nothing is stored.
    support: full
  diff_mode:
    description: Returns before and after (spec, labels, annotations) in diff mode.
    support: full
  idempotent:
    description: Running the same task twice reports no change the second time.
    support: full
"""

    INFO = r"""
options: {}
attributes:
  check_mode:
    description: Only reads; runs the same in check mode.
    support: full
  diff_mode:
    description: Returns no diff; it changes nothing.
    support: N/A
  idempotent:
    description: Only reads.
    support: full
"""
