# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The shape of the roles' task files, as a reader meets them.

- Entry points are the task files without a leading underscore, and exactly the entry points of
  meta/argument_specs.yml; helpers start with ``_`` (see the canary_release README).
- No chain of includes is more than three files deep below an entry point.
- Arguments that every traffic_split task shares are set once (module_defaults), not per task.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers.collection import REPO_ROOT

pytestmark = pytest.mark.unit

ROLES = REPO_ROOT / "roles"
INCLUDES = ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks", "include_tasks", "import_tasks")
# entry point -> _run -> _release -> _slots -> _step: the slots come in groups of five so that a finished run
# skips each group left in one task (a skipped slot costs every one of its tasks; the demo plans ~100 slots).
MAX_DEPTH = 4


def tasks_of(path: Path) -> list[dict]:
    """Every task of a task file, blocks, rescues and always sections opened."""
    found = []

    def walk(items):
        for item in items or []:
            found.append(item)
            for section in ("block", "rescue", "always"):
                walk(item.get(section))

    walk(yaml.safe_load(path.read_text()))
    return found


def included_files(path: Path) -> list[Path]:
    files = []
    for task in tasks_of(path):
        for key in INCLUDES:
            if key in task:
                target = task[key]
                target = target.get("file") if isinstance(target, dict) else target
                assert "{{" not in target, f"{path.name}: an include of a templated file name cannot be followed"
                files.append(path.parent / target)
    return files


def depth(path: Path, seen: tuple[Path, ...] = ()) -> int:
    assert path not in seen, f"include loop: {' -> '.join(p.name for p in (*seen, path))}"
    """How many includes deep the longest chain below ``path`` goes (0: it includes nothing)."""
    below = [depth(child, (*seen, path)) for child in included_files(path)]
    return 1 + max(below) if below else 0


@pytest.mark.parametrize("role", sorted(p.name for p in ROLES.iterdir() if (p / "tasks").is_dir()))
def test_entry_points_are_the_files_without_underscore(role):
    tasks = ROLES / role / "tasks"
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    entry_points = sorted(p.stem for p in tasks.glob("*.yml") if not p.name.startswith("_"))
    assert entry_points == sorted(specs), (entry_points, sorted(specs))


@pytest.mark.parametrize("entry_point", sorted(p for p in (ROLES / "canary_release" / "tasks").glob("[!_]*.yml")),
                         ids=lambda p: p.stem)
def test_includes_are_at_most_four_deep(entry_point):
    assert depth(entry_point) <= MAX_DEPTH


def test_every_entry_point_goes_through_the_one_wrapper():
    for entry_point in (ROLES / "canary_release" / "tasks").glob("[!_]*.yml"):
        assert [p.name for p in included_files(entry_point)] == ["_run.yml"], entry_point.name


def test_traffic_split_arguments_are_set_once():
    tasks = ROLES / "canary_release" / "tasks"
    shared = {"name", "namespace", "route_name", "destination_rule", "actor"}
    defaults = []
    for path in sorted(tasks.glob("*.yml")):
        for task in tasks_of(path):
            arguments = task.get("canary.istio.traffic_split")
            if arguments is not None:
                repeated = shared & set(arguments or {})
                assert not repeated, f"{path.name}: {task['name']} repeats {sorted(repeated)}"
            if "canary.istio.traffic_split" in (task.get("module_defaults") or {}):
                defaults.append(path.name)
    assert defaults == ["_run.yml"]
