"""`aiwg doctor` against a real daemon: healthy, stuck, killed with tasks running, and
with a heartbeat that says the clock went back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from aiwgd.config.paths import Paths
from tests.conftest import DaemonFactory
from tests.doctor.helpers import (
    STREAM_JSON_HELP,
    doctor,
    fake_agent,
    fix_of,
    line_of,
    make_private,
    verdicts,
)
from tests.taskhelp import pids_in, prog, task_config
from tests.utils import alive, wait_for


def _git_repo(root: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)

    git("init", "-q")
    git(
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "0",
    )


def test_a_healthy_project_passes_every_check(start_daemon: DaemonFactory, project: Path) -> None:
    agent = fake_agent(project / "bin", STREAM_JSON_HELP)
    _git_repo(project)
    config: dict[str, Any] = {
        "agent": {
            "command": [str(agent), "-p", "{prompt}"],
            "output": "stream-json",
            "isolate": "worktree",
        },
        "watch": {"enabled": True, "paths": [{"path": "src"}]},
    }
    (project / "src" / "pkg").mkdir(parents=True)
    d = start_daemon(config)
    make_private(d.paths)
    started = time.monotonic()
    out = doctor(project, "--json")
    took = time.monotonic() - started
    assert out.returncode == 0, out
    checks = verdicts(out)
    assert json.loads(out.stdout)["ok"] is True
    # Every check ok but one: what runs belongs to the running daemon, not looked at.
    leftovers = checks.pop("leftover processes")
    assert leftovers["status"] == "skip", leftovers
    assert {c["status"] for c in checks.values()} == {"ok"}, checks
    assert f"running (PID {d.pid}), answered ping" in checks["daemon"]["message"]
    assert checks["inotify"]["message"].startswith("2 directories watched")  # src, src/pkg
    assert took < 5, took  # well under a second alone; the margin is for a busy machine
    # The same as a person reads it: one line a check and the summary, no fix lines.
    human = doctor(project)
    assert human.returncode == 0, human
    assert human.stdout.splitlines()[-1] == "0 failed, 0 warnings, 12 ok, 1 skipped"
    assert "fix:" not in human.stdout


def test_a_daemon_that_does_not_answer_fails(start_daemon: DaemonFactory, project: Path) -> None:
    d = start_daemon()
    d.signal(signal.SIGSTOP)
    try:
        out = doctor(project)
    finally:
        d.signal(signal.SIGCONT)
    assert out.returncode == 1, out
    line = line_of(out, "daemon")
    assert line.startswith("[FAIL]")
    assert f"running (PID {d.pid}) but not answering on {d.paths.socket}" in line
    assert fix_of(out, "daemon").endswith(f"then aiwg restart (or kill -TERM {d.pid})")
    assert "the daemon is running" in line_of(out, "leftover processes")


def test_processes_a_killed_daemon_left_fail_until_stopped(
    start_daemon: DaemonFactory, project: Path, pids: list[int]
) -> None:
    d = start_daemon(task_config(grace=0.5))
    pidfile = project / "task.pids"
    task = d.call("task.submit", command=prog("--pidfile", str(pidfile), "--sleep", "60"))
    wait_for(lambda: pids_in(pidfile), 15, "the task's program to start")
    pids += pids_in(pidfile)
    wait_for(lambda: d.call("task.get", id=task["id"])["runner"], 10, "the runner recorded")
    d.kill9()

    out = doctor(project)
    assert out.returncode == 1, out
    line = line_of(out, "leftover processes")
    assert line.startswith("[FAIL]")
    assert f"1 process left running by a dead daemon: pid {pids[0]} (python" in line
    assert f"task {task['id']})" in line
    assert fix_of(out, "leftover processes") == (
        f"aiwg stop (or aiwg start) stops them; or: kill -TERM {pids[0]}"
    )
    # The dead daemon's PID file, socket and state.json are there too.
    stale = line_of(out, "stale files")
    assert stale.startswith("[warn]") and "daemon.sock" in stale, stale
    assert "nobody answers" in line_of(out, "daemon")

    os.kill(pids[0], signal.SIGTERM)  # what the fix says
    wait_for(lambda: not alive(pids[0]), 10, "the leftover to end")
    checks = verdicts(doctor(project, "--json"))
    assert checks["leftover processes"]["status"] == "ok"


def test_a_heartbeat_in_the_future_warns_of_the_clock(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon({"daemon": {"heartbeat_interval_seconds": 3600}})
    state_file = Paths(project).state_file
    state = wait_for(lambda: json.loads(state_file.read_text()), 10, "state.json")
    # What a daemon wrote before the wall clock was set back an hour.
    state["heartbeat_at"] = time.time() + 3600
    state_file.write_text(json.dumps(state))
    checks = verdicts(doctor(project, "--json"))
    clock = checks["clock"]
    assert clock["status"] == "warn", clock
    assert "in the future: the wall clock went back" in clock["message"]
    assert "time sync" in clock["fix"]
    assert checks["daemon"]["status"] == "ok"
    d.stop()
