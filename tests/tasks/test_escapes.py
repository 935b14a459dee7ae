"""Nothing a task starts outlives it (issue 8, "Nothing escapes").

A double-forked child (`(setsid sleep 300 &)` in the task's shell script) leaves the
task's process group and session at once and is re-parented away from the task, so no
snapshot of the task's tree ever sees it. It must still be gone when the task ends
(exit, cancel, timeout) and when the daemon stops, and the task record says what
escaped and what was done about it. The daemon is a child subreaper: orphans it adopts
and that exit are reaped, without stealing the exit status of the tasks' own children.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from tests.conftest import DaemonFactory
from tests.taskhelp import submit, task_config, wait_terminal
from tests.utils import alive, run_cli, wait_for


def escaping_script(pidfile: Path, then: str = "") -> list[str]:
    """A task that double-forks `sleep 300` in its own session and waits until that
    escapee wrote its PID, then runs `then`."""
    escape = f"(setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' &)"
    wait = f"while [ ! -s {pidfile} ]; do sleep 0.01; done"
    return ["sh", "-c", f"{escape}; {wait}; {then}"]


def escaped_pid(pidfile: Path) -> int:
    return int(wait_for(lambda: pidfile.read_text().strip(), 10, "the escapee's pid"))


def kill_leftover(pid: int) -> None:
    if alive(pid):
        psutil.Process(pid).kill()


def test_a_double_forked_child_is_gone_when_the_task_ends(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(grace=0.5))
    pidfile = project / "escapee"
    task = submit(d, escaping_script(pidfile, "exit 0"))
    try:
        done = wait_terminal(d, task["id"])
        pid = escaped_pid(pidfile)
        assert done["state"] == "completed" and done["exit_code"] == 0
        assert not alive(pid), "the escapee outlived its task"
        # The record says what escaped and what was done about it.
        assert f"pid {pid} (sleep): SIGTERM" in done["output_tail"]
        assert "escaped" in done["output_tail"]
    finally:
        kill_leftover(escaped_pid(pidfile))


def test_a_double_forked_child_is_gone_after_cancel(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(grace=0.5))
    pidfile = project / "escapee"
    task = submit(d, escaping_script(pidfile, "exec sleep 300"))
    pid = escaped_pid(pidfile)
    try:
        got = d.call("task.cancel", id=task["id"])
        assert got["state"] == "cancelled"
        assert not alive(pid), "the escapee outlived its cancelled task"
        assert f"pid {pid} (sleep)" in got["output_tail"]
    finally:
        kill_leftover(pid)


def test_a_double_forked_child_is_gone_after_timeout(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(grace=0.5))
    pidfile = project / "escapee"
    task = submit(d, escaping_script(pidfile, "exec sleep 300"), timeout_s=1)
    try:
        done = wait_terminal(d, task["id"])
        pid = escaped_pid(pidfile)
        assert done["state"] == "timed_out"
        assert not alive(pid), "the escapee outlived its timed-out task"
    finally:
        kill_leftover(escaped_pid(pidfile))


def test_a_double_forked_child_is_gone_after_aiwg_stop(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(grace=0.5))
    pidfile = project / "escapee"
    submit(d, escaping_script(pidfile, "exec sleep 300"))
    pid = escaped_pid(pidfile)
    try:
        result = run_cli(project, "stop")
        assert result.returncode == 0, result.stderr
        assert d.wait_exit() == 0
        assert not alive(pid), "the escapee outlived `aiwg stop`"
    finally:
        kill_leftover(pid)


def test_adopted_orphans_are_reaped_and_task_exit_codes_are_kept(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(cap=4))
    # Each task double-forks short-lived processes (the daemon adopts them, they exit,
    # SIGCHLD arrives) while the task's own exit status (3) must reach its record. One
    # orphan writes its parent's PID once its own parent is gone: the daemon adopted it.
    ppid = project / "ppid-{}"
    orphans = "for i in 1 2 3; do (setsid sleep 0.05 &); done"
    tell = '(setsid sh -c \'sleep 0.1; cut -d" " -f4 /proc/$$/stat > "$0"\' "$F" &)'
    wait = 'while [ ! -s "$F" ]; do sleep 0.01; done'
    ids = []
    for n in range(8):
        script = f"F={str(ppid).format(n)}; {orphans}; {tell}; {wait}; exit 3"
        ids.append(submit(d, ["sh", "-c", script])["id"])
    done = [wait_terminal(d, i) for i in ids]
    assert [(t["state"], t["exit_code"]) for t in done] == [("failed", 3)] * 8
    parents = {int(Path(str(ppid).format(n)).read_text()) for n in range(8)}
    assert parents == {d.pid}, "orphans of the tasks were not re-parented to the daemon"

    def zombies() -> list[int]:
        kids = psutil.Process(d.pid).children()
        return [k.pid for k in kids if k.status() == psutil.STATUS_ZOMBIE]

    wait_for(lambda: not zombies(), 5, "no zombie left among the daemon's children")
