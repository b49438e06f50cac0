# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""canary.istio.release_report runs in the controller process on local connections.

As plugins/plugin_utils/_in_process.py does for the Kubernetes modules, except that this module
talks to Prometheus only, so it runs its own ``execute`` without a Kubernetes connection.
"""

from __future__ import annotations

from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase

from ansible_collections.canary.istio.plugins.modules import release_report
from ansible_collections.canary.istio.plugins.plugin_utils._in_process import InProcessModuleAction


class ActionModule(InProcessModuleAction):
    MODULE = "release_report"

    def run(self, tmp=None, task_vars=None):
        if not self._in_process():
            return super().run(tmp, task_vars)
        result = ActionBase.run(self, tmp, task_vars)
        del tmp
        validation, params = self.validate_argument_spec(argument_spec=release_report.argument_spec())
        outcome = release_report.execute(params)
        for warning in outcome.pop("warnings", []):
            self._display.warning(warning)
        result.update(remove_values(outcome, validation._no_log_values))
        return result
