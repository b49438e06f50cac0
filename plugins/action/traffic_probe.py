# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""canary.istio.traffic_probe always runs in the controller (it measures from where Ansible runs),
printing progress lines while it works and its verdict at the end.

See plugins/plugin_utils/_in_process.py.
"""

from __future__ import annotations

from ansible_collections.canary.istio.plugins.module_utils._probe import summary_line
from ansible_collections.canary.istio.plugins.plugin_utils._in_process import InProcessModuleAction, show_progress


class ActionModule(InProcessModuleAction):
    MODULE = "traffic_probe"
    PROGRESS = True
    CONTROLLER_ONLY = True
    _requires_connection = False

    def show(self, result):
        if "shares" in result:
            show_progress(summary_line(result))
