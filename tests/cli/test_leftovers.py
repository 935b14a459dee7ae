"""After a kill -9 of the daemon (issue 8): `aiwg status` reports the task processes it
left, and `aiwg stop` stops them, reading what the journal recorded and the mark in the
processes' environment; a PID reused by someone else is never signalled."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiwgd.config.paths import Paths
from aiwgd.procs.marks import create_time
from tests.cli.clihelp import aiwg
from tests.conftest import DaemonFactory
from tests.taskhelp import pids_in, prog, task_config
from tests.utils import REPO, alive, wait_for

V01 = REPO / "tests" / "tasks" / "store" / "fixtures" / "v0.1"


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """PIDs a test started (directly or through a task): SIGKILLed if still there."""
    started: list[int] = []
    yield started
    for pid in started:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_kill9_then_status_reports_and_stop_stops(
    start_daemon: DaemonFactory, project: Path, pids: list[int]
) -> None:
    d = start_daemon(task_config(grace=0.5))
    pidfile, escaped = project / "task.pids", project / "escaped.pids"
    # One task whose program sleeps; it also starts a child that leaves its process
    # group and session and ignores SIGTERM (found by the mark, stopped by SIGKILL).
    task = d.call(
        "task.submit",
        command=prog("--grandchild", str(escaped), "--pidfile", str(pidfile), "--sleep", "60"),
    )
    wait_for(lambda: pids_in(pidfile) and pids_in(escaped), 15, "the task and its grandchild")
    pids += pids_in(pidfile) + pids_in(escaped)
    wait_for(lambda: d.call("task.get", id=task["id"])["runner"], 10, "the runner recorded")
    d.kill9()
    assert all(alive(p) for p in pids)  # what a kill -9 leaves

    root = ["--root", str(project)]
    out = aiwg(*root, "status")
    assert out.returncode == 3, out
    lines = out.stdout.splitlines()
    assert lines[0].startswith("aiwgd is not running"), lines
    assert lines[1] == "2 task processes left by it still run (`aiwg stop` stops them):", lines
    for pid in pids:
        assert any(line.startswith(f"  pid {pid} (") and task["id"] in line for line in lines)
    left = json.loads(aiwg(*root, "--json", "status").stdout)["left"]
    assert sorted(p["pid"] for p in left) == sorted(pids)
    assert {p["task"] for p in left} == {task["id"]}

    out = aiwg(*root, "stop")
    assert out.returncode == 0, out
    first, second = out.stdout.splitlines()
    assert first.startswith("aiwgd is not running (removed stale "), out  # its pid file...
    head, _, what = second.partition(": ")
    assert head == "stopped 2 task processes it left", out
    how = {int(part.split()[1]): part.rsplit(": ", 1)[1] for part in what.split("; ")}
    assert how == {pids_in(pidfile)[0]: "SIGTERM", pids_in(escaped)[0]: "SIGKILL"}, out
    assert not [p for p in pids if alive(p)]  # really gone
    again = aiwg(*root, "status")
    assert (again.returncode, len(again.stdout.splitlines())) == (3, 1), again
    assert json.loads(aiwg(*root, "--json", "status").stdout)["left"] == []
    assert aiwg(*root, "stop").stdout.startswith("aiwgd is not running")


def test_a_reused_pid_is_never_signalled(project: Path, pids: list[int]) -> None:
    # A store that says a task runs as PID X, where X is now someone else's process
    # (same PID, another create time) carrying no mark of ours.
    from aiwgd.cli.leftovers import running_tasks  # here: the test above runs without it

    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pids.append(stranger.pid)
    try:
        created = create_time(stranger.pid)
        assert created is not None
        runner = {"pid": stranger.pid, "pgid": stranger.pid, "create_time": created - 100}
        paths = Paths(project)
        paths.daemon_dir.mkdir(parents=True)
        record = {"id": "mx1aaaaaaa", "state": "running", "command": ["x"], "runner": runner}
        paths.tasks_file.write_text(
            '{"version": 1, "seq": 0, "written_at": 0, "tasks": [\n'
            + json.dumps(record, separators=(",", ":"))
            + "\n]}\n"
        )
        assert running_tasks(paths) == {"mx1aaaaaaa": runner}
        out = aiwg("--root", str(project), "status")
        assert (out.returncode, out.stdout) == (3, "aiwgd is not running\n"), out
        out = aiwg("--root", str(project), "stop")
        assert (out.returncode, out.stdout) == (0, "aiwgd is not running\n"), out
        assert stranger.poll() is None  # untouched
    finally:
        stranger.kill()
        stranger.wait()


def test_the_journal_is_replayed_over_tasks_json(tmp_path: Path) -> None:
    from aiwgd.cli.leftovers import running_tasks

    # A 0.1 store (runner fields pid/pgid/proc_create_time): its journal starts a task.
    shutil.copytree(V01, tmp_path / ".aiwg" / "daemon")
    assert running_tasks(Paths(tmp_path)) == {
        "mx1llejaf8": {"pid": 999999, "pgid": 999999, "create_time": 1700000001.25}
    }
    journal = Paths(tmp_path).tasks_journal
    with journal.open("a") as fh:  # the task ended; a new one is running, runner not yet known
        fh.write(
            '{"seq":7,"op":"set","id":"mx1llejaf8","fields":{"state":"failed","runner":null}}\n'
        )
        fh.write('{"seq":8,"op":"add","task":{"id":"mx1lleoooo","state":"queued"}}\n')
        fh.write('{"seq":9,"op":"set","id":"mx1lleoooo","fields":{"state":"running"}}\n')
        fh.write('{"seq":10,"op":"set","id":"mx1lk48oqy","fie')  # torn: never acknowledged
    assert running_tasks(Paths(tmp_path)) == {"mx1lleoooo": None}
    assert running_tasks(Paths(tmp_path / "nothing-here")) == {}
