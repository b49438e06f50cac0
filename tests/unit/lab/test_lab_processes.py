"""The lab's start-up check on a process it just spawned. Popen returns when the kernel wakes it from
vfork, which happens inside the child's execve before the new program's arguments are set up: for a
moment the child's /proc/<pid>/cmdline reads empty. Such a process is still starting, not gone.
Once started, a process is the lab's only while it runs (not a zombie, not dead) with the lab's
marker in its arguments: pids are reused (lab.procfs, which etcd, kube-apiserver, Prometheus and
the data plane are all checked with)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import controlplane, procfs

pytestmark = pytest.mark.unit

PID = 4242
RECORD = {"pid": PID, "marker": "/tmp/labs/one", "log": "etcd.log", "argv": "etcd"}


def _proc(tmp_path: Path, state: str, cmdline: bytes | None, comm: str = "etcd") -> Path:
    entry = tmp_path / str(PID)
    entry.mkdir()
    # The shape of /proc/<pid>/stat: pid (comm) state ppid ...
    (entry / "stat").write_text(f"{PID} ({comm}) {state} 1 {PID} {PID} 0 -1 4194560 0 0 0 0\n")
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


@pytest.mark.parametrize("state, cmdline, runs", [
    ("S", b"python3\x00-m\x00lab.dataplane\x00--dir\x00/tmp/labs/one\x00", True),
    ("R", b"python3\x00-m\x00lab.dataplane\x00", True),
    ("Z", b"python3\x00-m\x00lab.dataplane\x00", False),   # exited, not yet reaped
    ("X", b"python3\x00-m\x00lab.dataplane\x00", False),   # dead
    ("S", b"", False),                                        # inside exec: not started yet
    ("S", b"/usr/bin/other\x00", False),                     # the pid now runs something else
])
def test_a_running_process_is_the_labs_only_while_it_runs_the_labs_command(tmp_path, state, cmdline, runs):
    assert procfs.runs(PID, "lab.dataplane", _proc(tmp_path, state, cmdline)) is runs


def test_a_command_name_with_spaces_and_parentheses_is_read_past(tmp_path):
    # The kernel writes the command name as it is: the state is what follows its last ")".
    proc = _proc(tmp_path, "Z", b"python3\x00-m\x00lab.dataplane\x00", comm="lab (data) plane")
    assert procfs.seen(PID, proc) == ("Z", "python3 -m lab.dataplane ")
    assert not procfs.runs(PID, "lab.dataplane", proc)


@pytest.mark.parametrize("pid", [None, 0, -1, ""])
def test_no_pid_recorded_is_not_running(tmp_path, pid):
    assert not procfs.runs(pid, "lab.dataplane", tmp_path)


def test_a_group_is_alive_while_one_live_process_is_in_it(tmp_path):
    def member(pid: int, state: str, pgrp: int) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (python3) {state} 1 {pgrp} {pgrp} 0 -1 0\n")

    member(10, "Z", 10)          # the leader, exited
    member(11, "S", 99)          # another group
    (tmp_path / "self").mkdir()  # not a pid
    assert not procfs.group_alive(10, tmp_path)
    member(12, "S", 10)          # a child still running in the leader's group
    assert procfs.group_alive(10, tmp_path)
