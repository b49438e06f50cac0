# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Runs canary.istio.traffic_probe on the controller, printing progress while it works."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._probe import (
    PROBE_ARG_SPEC,
    probe_from_params,
    progress_line,
    summary_line,
)
from ansible_collections.canary.istio.plugins.plugin_utils._in_process import show_progress


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        validation, params = self.validate_argument_spec(argument_spec=PROBE_ARG_SPEC)
        del validation
        try:
            probe, failure = probe_from_params(params, progress=lambda snap: show_progress(progress_line(snap)))
        except CanaryInputError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        show_progress(summary_line(probe))
        result.update(probe)
        result["changed"] = False
        if failure:
            result.update(failed=True, msg=failure)
        return result
