"""Issue 11, queue control: task.pause / task.resume of a running task and of a group.

A paused task's processes are stopped (psutil status "stopped", state T) while its
state stays running with `paused: true`; its timeout clock stops too; cancelling it or
stopping the daemon continues it first, so SIGTERM (not SIGKILL) ends it.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from aiwgd.client import RpcError
from tests.conftest import DaemonFactory
from tests.taskhelp import pids_in, prog, submit, task_config, wait_terminal
from tests.utils import DaemonProc, wait_for


def status(pid: int) -> str:
    return str(psutil.Process(pid).status())


def running_pid(d: DaemonProc, task_id: str, pidfile: Path) -> int:
    wait_for(lambda: pids_in(pidfile), 10, "the task to write its pid")
    wait_for(lambda: d.call("task.get", id=task_id)["runner"], 10, "its runner recorded")
    [pid] = pids_in(pidfile)
    return pid


def test_a_paused_task_is_stopped_and_its_timeout_clock_too(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(config=task_config())
    gate, pidfile = project / "gate", project / "pid"
    task = submit(d, prog("--pidfile", str(pidfile), "--gate", str(gate)), timeout_s=1.0)
    pid = running_pid(d, task["id"], pidfile)
    got = d.call("task.pause", id=task["id"])
    assert got == {"id": task["id"], "paused": True, "tasks": [task["id"]]}
    paused_at = time.monotonic()
    wait_for(lambda: status(pid) == psutil.STATUS_STOPPED, 5, "the process stopped (T)")
    shown = d.call("task.get", id=task["id"])
    assert shown["state"] == "running" and shown["paused"] is True
    assert d.call("task.list")["tasks"][0]["paused"] is True
    assert d.call("task.pause", id=task["id"])["paused"] is True  # twice: no harm
    # Paused for longer than its whole timeout: not timed out.
    wait_for(lambda: time.monotonic() - paused_at > 1.5, 5, "1.5 s paused")
    assert d.call("task.get", id=task["id"])["state"] == "running"
    assert d.call("task.resume", id=task["id"])["paused"] is False
    wait_for(lambda: status(pid) != psutil.STATUS_STOPPED, 5, "the process continued")
    assert d.call("task.get", id=task["id"])["paused"] is False
    with pytest.raises(RpcError) as info:
        d.call("task.resume", id=task["id"])  # not paused any more
    assert info.value.code == -32002 and "not paused" in info.value.message
    gate.touch()
    assert wait_terminal(d, task["id"])["state"] == "completed"
    with pytest.raises(RpcError) as info:
        d.call("task.pause", id=task["id"])  # ended: nothing to pause
    assert info.value.code == -32002 and "only a running task" in info.value.message


def test_the_clock_resumes_and_a_paused_task_is_cancelled_with_sigterm(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(config=task_config(grace=5))
    pidfile = project / "pid"
    # The timeout still ends it once resumed.
    task = submit(d, prog("--pidfile", str(pidfile), "--gate", str(project / "never")), timeout_s=1)
    running_pid(d, task["id"], pidfile)
    d.call("task.pause", id=task["id"])
    d.call("task.resume", id=task["id"])
    assert wait_terminal(d, task["id"])["state"] == "timed_out"
    # Cancelled while paused: continued first, so its SIGTERM ends it (not the SIGKILL
    # that would come only after the 5 s grace).
    pidfile2 = project / "pid2"
    other = submit(d, prog("--pidfile", str(pidfile2), "--gate", str(project / "never")))
    pid = running_pid(d, other["id"], pidfile2)
    d.call("task.pause", id=other["id"])
    wait_for(lambda: status(pid) == psutil.STATUS_STOPPED, 5, "the process stopped (T)")
    started = time.monotonic()
    done = d.call("task.cancel", id=other["id"])
    assert done["state"] == "cancelled" and done["signal"] == signal.SIGTERM
    assert time.monotonic() - started < 4


def test_a_paused_group_starts_nothing_and_pauses_its_running_tasks(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(config=task_config(cap=4, tasks={"groups": {"g": {"max_parallel": 2}}}))
    gate, pidfile = project / "gate", project / "pid"
    first = submit(d, prog("--pidfile", str(pidfile), "--gate", str(gate)), group="g")
    pid = running_pid(d, first["id"], pidfile)
    got = d.call("task.pause", group="g")
    assert got == {"group": "g", "paused": True, "tasks": [first["id"]]}
    wait_for(lambda: status(pid) == psutil.STATUS_STOPPED, 5, "the group's task stopped")
    second = submit(d, prog("--say", "second"), group="g")
    loose = submit(d, prog("--say", "no group"))
    assert wait_terminal(d, loose["id"])["state"] == "completed"  # slots are free
    stats: dict[str, Any] = d.call("task.stats")["groups"]["g"]
    assert stats["paused"] is True and stats["queued"] == 1 and stats["running"] == 1
    assert d.call("task.get", id=second["id"])["state"] == "queued"
    assert d.call("task.resume", group="g")["tasks"] == [first["id"]]
    wait_for(lambda: status(pid) != psutil.STATUS_STOPPED, 5, "the task continued")
    assert wait_terminal(d, second["id"])["state"] == "completed"
    gate.touch()
    assert wait_terminal(d, first["id"])["state"] == "completed"
    with pytest.raises(RpcError) as info:
        d.call("task.pause", group="nosuch")
    assert info.value.code == -32602 and 'unknown group "nosuch"' in info.value.message
    with pytest.raises(RpcError) as info:
        d.call("task.pause")
    assert info.value.code == -32602


def test_the_daemon_stop_continues_a_paused_task_before_the_ladder(
    start_daemon: DaemonFactory, project: Path
) -> None:
    cfg = task_config(grace=5)
    d = start_daemon(config=cfg)
    pidfile = project / "pid"
    task = submit(
        d, prog("--pidfile", str(pidfile), "--gate", str(project / "never")), on_interrupt="fail"
    )
    pid = running_pid(d, task["id"], pidfile)
    d.call("task.pause", id=task["id"])
    wait_for(lambda: status(pid) == psutil.STATUS_STOPPED, 5, "the process stopped (T)")
    d.call("daemon.stop", fast=True)
    d.wait_exit()
    assert not psutil.pid_exists(pid) or status(pid) == psutil.STATUS_ZOMBIE
    d = start_daemon(config=cfg)
    after = d.call("task.get", id=task["id"])
    assert after["state"] == "failed" and after["signal"] == signal.SIGTERM
