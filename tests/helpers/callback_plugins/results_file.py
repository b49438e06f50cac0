# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: writes every task result (with its start and end time) as JSON lines.

ansible-core no longer ships a JSON stdout callback, and tests want both what a person sees
(the default output) and the results as data. Enabled by the tests through
ANSIBLE_CALLBACK_PLUGINS / ANSIBLE_CALLBACKS_ENABLED; writes to $CANARY_TEST_RESULTS.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: results_file
type: aggregate
short_description: Task results as JSON lines, for the tests
description: Writes each task result to the file named by the environment variable CANARY_TEST_RESULTS.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "results_file"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.path = os.environ.get("CANARY_TEST_RESULTS")
        self.started = {}
        self.play = None

    def v2_playbook_on_play_start(self, play):
        self.play = play.get_name()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started[task._uuid] = time.time()

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _write(self, result, status):
        if not self.path:
            return
        task = result._task
        record = {"play": self.play, "task": task.get_name(), "action": task.action, "host": result._host.get_name(),
                  "status": status, "start": self.started.get(task._uuid), "end": time.time(),
                  "result": self._clean(result._result)}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")

    @staticmethod
    def _clean(data):
        return {k: v for k, v in data.items() if k not in ("invocation",)} if isinstance(data, dict) else data

    def v2_runner_on_ok(self, result):
        self._write(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._write(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._write(result, "unreachable")
