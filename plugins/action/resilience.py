# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""canary.istio.resilience runs in the controller process on local connections.

See plugins/plugin_utils/_in_process.py.
"""

from __future__ import annotations

from ansible_collections.canary.istio.plugins.plugin_utils._in_process import InProcessModuleAction


class ActionModule(InProcessModuleAction):
    MODULE = "resilience"
