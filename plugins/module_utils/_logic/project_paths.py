# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where relative manifest paths are read from: the user's project, the same for every stage.

1. ``canary_project_dir`` when it is given;
2. else, when the playbook lies inside an installed collection (a project's playbook imported
   ``canary.istio.canary``), the working directory - AWX runs every job in its project's directory,
   ``ansible-playbook`` users run in theirs;
3. else the playbook's directory, or its parent when that directory is named ``playbooks`` (the layout
   of this repository and of many projects: ``playbooks/`` beside ``deploy/``).
"""

from __future__ import annotations

import os
from typing import Any


def project_root(explicit: Any, playbook_dir: str, cwd: str) -> str:
    if isinstance(explicit, str) and explicit.strip():
        return os.path.abspath(os.path.expanduser(explicit.strip()))
    parts = os.path.normpath(playbook_dir).split(os.sep)
    if "ansible_collections" in parts:
        return os.path.abspath(cwd)
    if os.path.basename(os.path.normpath(playbook_dir)) == "playbooks":
        return os.path.dirname(os.path.normpath(playbook_dir))
    return os.path.normpath(playbook_dir)


def resolve(paths: list[Any], root: str) -> list[str]:
    """Each path as given when absolute (or ``~``), else under ``root``; blanks dropped."""
    resolved = []
    for path in paths:
        text = str(path).strip()
        if not text:
            continue
        text = os.path.expanduser(text)
        resolved.append(text if os.path.isabs(text) else os.path.join(root, text))
    return resolved
