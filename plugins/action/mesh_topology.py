# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""canary.istio.mesh_topology runs in the controller process on local connections, and prints its table.

As for canary_analysis: the module talks to Prometheus only, so on a local connection its own
``execute`` runs here without a Kubernetes connection; elsewhere the module runs as usual. Either
way the table in ``text`` is printed on the controller (unless ``print_table: false``), so that it
reads as a table in a terminal and in AWX job output instead of one escaped JSON string.
"""

from __future__ import annotations

from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.canary.istio.plugins.modules import mesh_topology
from ansible_collections.canary.istio.plugins.plugin_utils._in_process import InProcessModuleAction

display = Display()


class ActionModule(InProcessModuleAction):
    MODULE = "mesh_topology"

    def run(self, tmp=None, task_vars=None):
        if not self._in_process():
            result = super().run(tmp, task_vars)
        else:
            result = ActionBase.run(self, tmp, task_vars)
            del tmp
            validation, params = self.validate_argument_spec(argument_spec=mesh_topology.argument_spec())
            outcome = mesh_topology.execute(params)
            result.update(remove_values(outcome, validation._no_log_values))
        if result.get("text") and not result.get("failed") and boolean(self._task.args.get("print_table", True),
                                                                       strict=False):
            display.display(result["text"].rstrip("\n"))
        return result
