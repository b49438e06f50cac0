"""The lab's start-up check on a process it just spawned. Popen returns when the kernel wakes it from
vfork, which happens inside the child's execve before the new program's arguments are set up: for a
moment the child's /proc/<pid>/cmdline reads empty. Such a process is still starting, not gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import controlplane

pytestmark = pytest.mark.unit

PID = 4242
RECORD = {"pid": PID, "marker": "/tmp/labs/one", "log": "etcd.log", "argv": "etcd"}


def _proc(tmp_path: Path, state: str, cmdline: bytes | None) -> Path:
    entry = tmp_path / str(PID)
    entry.mkdir()
    # The shape of /proc/<pid>/stat: pid (comm) state ppid ...
    (entry / "stat").write_text(f"{PID} (etcd) {state} 1 {PID} {PID} 0 -1 4194560 0 0 0 0\n")
    if cmdline is not None:
        (entry / "cmdline").write_bytes(cmdline)
    return tmp_path


def test_a_process_inside_exec_is_still_starting(tmp_path):
    assert controlplane.still_starting(RECORD, _proc(tmp_path, "R", b""))


def test_a_process_running_its_command_is_still_starting(tmp_path):
    assert controlplane.still_starting(RECORD, _proc(tmp_path, "S", b"etcd\x00--data-dir\x00/tmp/labs/one/etcd\x00"))


@pytest.mark.parametrize("state, cmdline", [
    ("Z", b""),                                   # exited, not yet reaped
    ("S", b"/usr/bin/other\x00--flag\x00"),       # the pid now runs something else
    ("S", None),                                  # gone between the two reads
])
def test_an_exited_or_reused_process_is_not(tmp_path, state, cmdline):
    assert not controlplane.still_starting(RECORD, _proc(tmp_path, state, cmdline))


def test_no_such_process_is_not(tmp_path):
    assert not controlplane.still_starting(RECORD, tmp_path)
