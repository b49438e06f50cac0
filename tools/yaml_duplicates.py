# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Repeated blocks of YAML in the roles and playbooks (``make lint``).

A block is six or more lines in a row that appear again elsewhere - in another file, or further on
in the same file. Lines are compared without their indentation (a task repeated inside a block is
still the same task); blank lines, comments and document markers are skipped. Each repeat is reported
once, as ``file:first-last ~ file:first-last (N lines)``, and the exit status is 1 when there is one.
A role's ``meta/main.yml`` is left out: its galaxy_info is the same declaration in every role, not logic.

    python tools/yaml_duplicates.py [--min-lines N] [PATH ...]      (default: roles playbooks)
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

MIN_LINES = 6


@dataclass(frozen=True)
class Line:
    path: str
    number: int
    text: str


@dataclass(frozen=True)
class Repeat:
    first: tuple[str, int, int]
    second: tuple[str, int, int]
    lines: int

    def __str__(self) -> str:
        (path_a, start_a, end_a), (path_b, start_b, end_b) = self.first, self.second
        return f"{path_a}:{start_a}-{end_a} ~ {path_b}:{start_b}-{end_b} ({self.lines} lines)"


def significant_lines(path: str, text: str) -> list[Line]:
    """The lines that count, stripped of indentation and trailing blanks, with their line numbers."""
    kept = []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
            continue
        kept.append(Line(path, number, stripped))
    return kept


def find_repeats(files: Sequence[tuple[str, str]], min_lines: int = MIN_LINES) -> list[Repeat]:
    """Maximal runs of at least ``min_lines`` lines that occur twice, over ``(path, text)`` pairs."""
    sequences = [significant_lines(path, text) for path, text in files]
    windows: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)
    for index, lines in enumerate(sequences):
        for start in range(len(lines) - min_lines + 1):
            windows[tuple(line.text for line in lines[start:start + min_lines])].append((index, start))
    pairs: set[tuple[int, int, int, int]] = set()
    for places in windows.values():
        for a in range(len(places)):
            for b in range(a + 1, len(places)):
                (file_a, start_a), (file_b, start_b) = places[a], places[b]
                if file_a == file_b and abs(start_a - start_b) < min_lines:
                    continue  # a run overlapping itself (a line repeated over and over)
                pairs.add((file_a, start_a, file_b, start_b))
    repeats = []
    for file_a, start_a, file_b, start_b in sorted(pairs):
        if (file_a, start_a - 1, file_b, start_b - 1) in pairs:
            continue  # inside a longer run, reported from its start
        length = min_lines
        while (file_a, start_a + length - min_lines + 1, file_b, start_b + length - min_lines + 1) in pairs:
            length += 1
        lines_a, lines_b = sequences[file_a], sequences[file_b]
        repeats.append(Repeat((lines_a[start_a].path, lines_a[start_a].number, lines_a[start_a + length - 1].number),
                              (lines_b[start_b].path, lines_b[start_b].number, lines_b[start_b + length - 1].number),
                              length))
    return repeats


def yaml_files(roots: Iterable[str]) -> list[Path]:
    found = []
    for root in roots:
        path = Path(root)
        found.extend([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml")
                                                          and p.parts[-2:] != ("meta", "main.yml")))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["roles", "playbooks"])
    parser.add_argument("--min-lines", type=int, default=MIN_LINES)
    args = parser.parse_args(argv)
    files = [(str(path), path.read_text(encoding="utf-8")) for path in yaml_files(args.paths)]
    repeats = find_repeats(files, args.min_lines)
    for repeat in repeats:
        print(repeat)
    if repeats:
        print(f"{len(repeats)} repeated block(s) of {args.min_lines} or more lines in {', '.join(args.paths)}: "
              "share them (a task file, module_defaults, a filter) instead", file=sys.stderr)
    return 1 if repeats else 0


if __name__ == "__main__":
    sys.exit(main())
