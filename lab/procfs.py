"""What /proc says about the lab's own processes: whether a recorded pid still runs the lab's command.

Pids are reused, so a pid alone proves nothing: the process must also not be a zombie (``Z``) or
dead (``X``, the run state letter in ``/proc/<pid>/stat``) and its arguments must hold a marker the
lab put there (its directory, its config file, its module name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROC = Path("/proc")
GONE = ("Z", "X")


def seen(pid: Any, proc: Path = PROC) -> tuple[str, str] | None:
    """A process's run state and its arguments joined by spaces, or None when there is no such process."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
        arguments = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    # The command name in parentheses may hold spaces and ")": the state follows the last ")".
    return stat.rsplit(")", 1)[-1].split()[0], arguments.replace(b"\0", b" ").decode(errors="replace")


def runs(pid: Any, marker: str, proc: Path = PROC) -> bool:
    """True when ``pid`` is a live process whose arguments hold ``marker``."""
    if not pid or int(pid) <= 0:
        return False
    found = seen(pid, proc)
    return found is not None and found[0] not in GONE and marker in found[1]


def group_alive(pgid: int, proc: Path = PROC) -> bool:
    """Whether any live process (not a zombie, not dead) remains in process group ``pgid``."""
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp.
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in GONE:
            return True
    return False
