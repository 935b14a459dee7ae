"""Long commands say what they wait for (issue 12): `aiwg stop` names the tasks it
waits for and the grace, `aiwg task run --wait` the task's state and its place in the
queue. Plain lines on a pipe; on a real pseudo-terminal one line redrawn with carriage
returns and cleared before the command's final line."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from aiwgd.cli.daemonctl import read_pid
from aiwgd.cli.progress import Mode, Progress
from aiwgd.client import Client
from aiwgd.config.paths import Paths
from tests.cli.clihelp import kill_detached
from tests.cli.progresshelp import Running
from tests.conftest import DaemonFactory
from tests.taskhelp import prog, submit, task_config
from tests.utils import BASE_CONFIG, run_cli, wait_for, write_config

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def busy(start_daemon: DaemonFactory, project: Path, cap: int = 2, grace: float = 0.5) -> Path:
    """A daemon running one task that ends when the returned gate file appears."""
    d = start_daemon(task_config(cap=cap, grace=grace))
    gate = project / "gate"
    task = submit(d, prog("--gate", str(gate)))
    wait_for(lambda: d.call("task.get", id=task["id"])["state"] == "running", 10, "a task to run")
    return gate


def test_stop_on_a_pipe_names_the_task_it_waits_for_and_the_grace(
    start_daemon: DaemonFactory, project: Path
) -> None:
    gate = busy(start_daemon, project, grace=30)
    pid = read_pid(Paths(project))
    stop = Running(project, "stop")
    try:
        # A step that lasts over a second gets its line: the daemon drains the task.
        seen = stop.until("\n", timeout=15)
        assert seen == "stopping: 1 task running, waiting for it (grace 30 s)\n"
        gate.touch()  # the task ends on its own, within the grace
        code, out, err = stop.finish()
    finally:
        stop.kill()
    assert (code, out) == (0, f"aiwgd stopped (PID {pid})\n"), err
    assert err == "stopping: 1 task running, waiting for it (grace 30 s)\n"


def test_a_quick_stop_on_a_pipe_adds_no_line(start_daemon: DaemonFactory, project: Path) -> None:
    d = start_daemon()
    out = run_cli(project, "stop")
    assert (out.returncode, out.stdout, out.stderr) == (0, f"aiwgd stopped (PID {d.pid})\n", "")


def test_task_wait_on_a_pipe_writes_a_line_per_state(
    start_daemon: DaemonFactory, project: Path
) -> None:
    gate = busy(start_daemon, project, cap=1)
    waiting = Running(project, "task", "run", "--wait", "--", *prog("--say", "hi"))
    try:
        first = waiting.until("\n")
        task_id = first.split()[1]
        assert first == f"task {task_id} queued\n"
        gate.touch()
        code, out, err = waiting.finish()
    finally:
        waiting.kill()
    assert (code, out) == (0, ""), err
    assert err == f"task {task_id} queued\ntask {task_id} running\ntask {task_id} completed\n"
    assert "\r" not in err and "\x1b" not in err


def test_task_wait_on_a_terminal_shows_its_place_in_the_queue(
    start_daemon: DaemonFactory, project: Path
) -> None:
    gate = busy(start_daemon, project, cap=1)
    with Client(project) as c:
        c.call("task.submit", command=prog("--gate", str(gate)), priority="high")
        c.call("task.submit", command=prog(), priority="low")  # behind ours: not counted
    waiting = Running(project, "task", "run", "--wait", "--", *prog(), tty=True)
    try:
        seen = waiting.until("(place 2 of 3 in the queue)")
        task_id = seen.split()[1]
        assert "\r\x1b[36m" in seen  # redrawn in place, in colour (no NO_COLOR here)
        gate.touch()
        code, _, seen = waiting.finish()
    finally:
        waiting.kill()
    assert code == 0, seen
    plain = ANSI.sub("", seen)
    assert f" task {task_id} running" in plain  # redrawn as it went from queued to running
    # ... and cleared before the final line, which stands alone.
    last = plain.rsplit("\r\n", 2)[-2]
    assert last.split("\r")[-1] == f"task {task_id} completed", repr(plain[-300:])


def test_start_and_stop_on_a_terminal_redraw_one_line_then_print_the_final_one(
    project: Path,
) -> None:
    write_config(project, BASE_CONFIG)
    try:
        start = Running(project, "start", tty=True, NO_COLOR="1")
        code, _, seen = start.finish()
        assert code == 0, seen
        assert "\x1b" not in seen  # NO_COLOR: no escape sequence at all
        final = re.search(r"\raiwgd started \(PID (\d+)\)\r\n$", seen)
        assert final, repr(seen)
        pid, spinner = int(final.group(1)), seen[: final.start()]
        assert spinner.startswith("\r⠋ starting daemon: launching, loading config"), spinner
        assert spinner.endswith(" " * 10), "the spinner's line is blanked before the final one"
        stop = Running(project, "stop", tty=True)
        code, _, seen = stop.finish()
        assert code == 0, seen
        assert seen.startswith("\r\x1b[36m⠋\x1b[0m stopping: waiting for the process to exit")
        assert seen.endswith(f"\raiwgd stopped (PID {pid})\r\n"), repr(seen)
    finally:
        kill_detached(project)


def test_term_dumb_gets_plain_lines_and_json_gets_none(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = io.StringIO()
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setenv("TERM", "xterm")
    assert Progress(stream=terminal).mode == Mode.TTY
    monkeypatch.setenv("TERM", "dumb")
    assert Progress(stream=terminal).mode == Mode.PLAIN
    assert Progress.unless(True).mode == Mode.OFF


def test_on_a_pipe_a_step_is_written_once_it_has_lasted_plain_after_s() -> None:
    out = io.StringIO()
    with Progress(Mode.PLAIN, out, plain_after_s=0.3) as progress:
        progress.step("quick")
        progress.step("slow")
        assert out.getvalue() == ""  # neither has lasted 0.3 s yet
        wait_for(lambda: out.getvalue() == "slow\n", 5, "the slow step's line")
        progress.step(lambda: "slow")  # the same text: no second line
    assert out.getvalue() == "slow\n"
