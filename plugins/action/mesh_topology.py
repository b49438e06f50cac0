# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""canary.istio.mesh_topology runs in the controller process on local connections, and prints its table.

See plugins/plugin_utils/_in_process.py. Either way the module runs, the table in ``text`` is printed
on the controller (unless ``print_table: false``), so that it reads as a table in a terminal and in
AWX job output instead of one escaped JSON string.
"""

from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.canary.istio.plugins.plugin_utils._in_process import InProcessModuleAction, display


class ActionModule(InProcessModuleAction):
    MODULE = "mesh_topology"

    def show(self, result):
        if result.get("text") and not result.get("failed") and boolean(self._task.args.get("print_table", True),
                                                                       strict=False):
            display.display(result["text"].rstrip("\n"))
