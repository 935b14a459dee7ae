"""A paused task (task.pause: SIGSTOP) is not judged by its limits while it is stopped:
it cannot write output or use time. Silence counts again from the resume."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import DaemonFactory
from tests.monitor.helpers import SILENT, monitor_config, script
from tests.taskhelp import wait_terminal
from tests.utils import DaemonProc, wait_for


def samples(d: DaemonProc) -> int:
    return int(d.call("daemon.status")["subsystems"]["monitor"]["samples"])


def test_a_paused_task_is_not_killed_for_silence_and_counts_again_from_the_resume(
    project: Path, start_daemon: DaemonFactory
) -> None:
    d = start_daemon(monitor_config())
    argv = script(project, "silent.py", SILENT)
    task = d.call("task.submit", command=argv, limits={"no_output_s": 1.0})
    wait_for(
        lambda: "waiting for input" in d.call("task.get", id=task["id"])["output_tail"],
        10,
        "output",
    )
    d.call("task.pause", id=task["id"])
    # Twenty samples (0.1 s apart: 2 s) while paused: twice the silence it may keep.
    start = samples(d)
    wait_for(lambda: samples(d) >= start + 20, 20, "twenty monitor samples")
    paused = d.call("task.get", id=task["id"])
    assert (paused["state"], paused.get("paused")) == ("running", True)
    resumed = time.monotonic()
    d.call("task.resume", id=task["id"])
    done = wait_terminal(d, task["id"])
    assert (done["state"], done["error"]) == ("failed", "killed: no output for 1 s")
    # Silence counted from the resume, not from its last line before the pause.
    assert time.monotonic() - resumed >= 0.9
