# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: interactive
short_description: Whether a person can answer a prompt on the controller right now
version_added: 0.1.0
author:
  - canary.istio contributors (@canary-istio)
description:
  - Returns V(true) when C(ansible-playbook) reads its standard input from a terminal, runs in
    the foreground of that terminal, and is not run by AWX, Tower or ansible-runner; V(false) otherwise.
  - Use it before an C(ansible.builtin.pause) prompt. Without a terminal, C(pause) does not wait
    and returns an empty answer; under AWX and ansible-runner the playbook does have a terminal
    (a pseudo-terminal nobody types into), so a C(pause) without a timeout waits forever.
  - Tasks run in worker processes whose standard input is C(/dev/null), so the plugin looks at the
    standard input of the C(ansible-playbook) process itself (through C(/proc) on Linux). Where
    that cannot be read, the answer is V(false), the safe side; set
    E(CANARY_ISTIO_INTERACTIVE=1) to say that a person is there.
  - E(CANARY_ISTIO_INTERACTIVE=0) forces V(false), for wrappers that hold a terminal but no person.
options: {}
notes:
  - Runs on the controller, like every lookup.
  - AWX and ansible-runner are recognised by the E(AWX_ISOLATED_DATA_DIR) variable that
    ansible-runner sets for every run, and by AWX's E(JOB_ID) with E(AWX_HOST) or E(TOWER_HOST).
"""

EXAMPLES = r"""
- name: Ask only when someone can answer
  ansible.builtin.pause:
    prompt: Canary share in percent
  register: answer
  when: lookup('canary.istio.interactive')

- name: Refuse at once instead of waiting
  ansible.builtin.fail:
    msg: No terminal to ask on; pass -e canary_release_ratio=N
  when: not lookup('canary.istio.interactive')
"""

RETURN = r"""
_raw:
  description: One boolean, whether prompts can be answered.
  type: list
  elements: bool
"""

import os
import stat

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

_RUNNER_VARIABLES = ("AWX_ISOLATED_DATA_DIR",)
_AWX_JOB_VARIABLES = ("AWX_HOST", "TOWER_HOST")


def _override(environ) -> bool | None:
    value = environ.get("CANARY_ISTIO_INTERACTIVE", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def _run_by_automation(environ) -> bool:
    if any(environ.get(name) for name in _RUNNER_VARIABLES):
        return True
    return bool(environ.get("JOB_ID")) and any(environ.get(name) for name in _AWX_JOB_VARIABLES)


def _foreground_terminal(fd: int, process_group: int) -> bool:
    """Whether ``fd`` is a terminal whose foreground process group is ``process_group``."""
    try:
        return os.isatty(fd) and os.tcgetpgrp(fd) == process_group
    except OSError:
        return False


def _own_stdin_interactive() -> bool:
    # The main process (for example when a plugin templates outside a worker) still has its stdin.
    try:
        return _foreground_terminal(0, os.getpgrp())
    except OSError:
        return False


def _foreground_of(pid: int) -> bool:
    """Whether ``pid`` runs in the foreground process group of its controlling terminal.

    ``tcgetpgrp`` only answers for the caller's own controlling terminal, which a worker (a
    session of its own) does not have; ``/proc/PID/stat`` carries the same facts for any process.
    """
    with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
        fields = handle.read().rpartition(")")[2].split()
    # After the command name: state, ppid, pgrp, session, tty_nr, tpgid, ...
    process_group, terminal, foreground_group = int(fields[2]), int(fields[4]), int(fields[5])
    return terminal != 0 and foreground_group == process_group


def _parent_stdin_interactive() -> bool:
    """The terminal check for the process that forked this worker: ansible-playbook itself."""
    parent = os.getppid()
    path = f"/proc/{parent}/fd/0"
    try:
        if not stat.S_ISCHR(os.stat(path).st_mode):
            return False  # a pipe, a file or /dev/null; opening a FIFO could even block
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return os.isatty(fd) and _foreground_of(parent)
    except (OSError, ValueError, IndexError):
        return False
    finally:
        os.close(fd)


def controller_is_interactive(environ=None) -> bool:
    environ = os.environ if environ is None else environ
    forced = _override(environ)
    if forced is not None:
        return forced
    if _run_by_automation(environ):
        return False
    return _own_stdin_interactive() or _parent_stdin_interactive()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError(f"canary.istio.interactive takes no terms, got {terms!r}")
        self.set_options(var_options=variables, direct=kwargs)
        return [controller_is_interactive()]
