"""The other limits: sustained CPU, wall runtime, open files (also set in the kernel
with prlimit), and config errors that name their key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aiwgd.config import ValidationError, parse_config
from tests.conftest import DaemonFactory
from tests.monitor.helpers import CHATTY, OPEN_FILES, SILENT, SPIN, monitor_config, script
from tests.taskhelp import wait_terminal
from tests.utils import BASE_CONFIG, deep_merge, wait_for, write_config


def test_sustained_cpu_and_runtime_kill(project: Path, start_daemon: DaemonFactory) -> None:
    d = start_daemon(monitor_config())
    spin = [*script(project, "spin.py", SPIN), "20"]
    # 10% of one core over 0.3 s: a spinning loop is far above even on a busy machine.
    hot = d.call("task.submit", command=spin, limits={"cpu_percent": 10, "cpu_window_s": 0.3})
    slow = d.call(
        "task.submit",
        command=[*script(project, "chatty.py", CHATTY), "20"],
        limits={"max_runtime_s": 0.5, "cpu_percent": 10_000},
    )
    hot_done = wait_terminal(d, hot["id"])
    assert hot_done["state"] == "failed"
    assert hot_done["error"].startswith("killed: cpu ")
    assert hot_done["error"].endswith("% over the limit of 10% for 0.3 s")
    slow_done = wait_terminal(d, slow["id"])
    assert slow_done["state"] == "failed"
    assert slow_done["error"].startswith("killed: runtime ")
    assert slow_done["error"].endswith(" s over the limit of 0.5 s")


def test_max_fds_is_enforced_by_the_kernel(project: Path, start_daemon: DaemonFactory) -> None:
    d = start_daemon(monitor_config())
    argv = script(project, "open.py", OPEN_FILES)
    task = d.call("task.submit", command=argv, limits={"max_fds": 64})
    done = wait_terminal(d, task["id"])
    # RLIMIT_NOFILE set right after the spawn: EMFILE before 64 descriptors, so the
    # task never went over and ends on its own.
    assert done["state"] == "completed", done
    words = done["output_tail"].split()
    assert words[:2] == ["refused", "after"] and int(words[2]) < 64 and words[3] == "True"
    unlimited = wait_terminal(d, d.call("task.submit", command=argv)["id"])
    tail = unlimited["output_tail"].split()
    assert not tail or int(tail[2]) > 64  # all 10,000, or the daemon's own soft limit


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"monitor": {"interval_s": 0.01}}, "monitor.interval_s"),
        ({"monitor": {"history": 0}}, "monitor.history"),
        ({"agent": {"limits": {"memory_mb": 0}}}, "agent.limits.memory_mb"),
        ({"agent": {"limits": {"no_output": 5}}}, "agent.limits"),
    ],
)
def test_config_errors_name_their_key(config: dict[str, object], path: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_config(config)
    assert any(str(i).startswith(path) for i in exc.value.issues), exc.value.issues


def test_reload_switches_the_monitor_and_its_interval(
    project: Path, start_daemon: DaemonFactory
) -> None:
    off = monitor_config(monitor={"interval_s": 0.1, "enabled": False})
    d = start_daemon(off)
    status = d.call("daemon.status")["subsystems"]["monitor"]
    assert (status["state"], status["samples"]) == ("disabled", 0)
    silent = script(project, "silent.py", SILENT)
    task = d.call("task.submit", command=silent, limits={"no_output_s": 0.3})
    # Off, nothing is enforced: the silent task is still running once it is well over.

    def silent_past_limit() -> list[dict[str, Any]]:
        rows = d.call("monitor.processes")["processes"]
        return [r for r in rows if r["last_output_s_ago"] > 0.6]

    rows = wait_for(silent_past_limit, 10, "the task to be silent past its limit")
    assert rows[0]["processes"] is None  # listed, never sampled
    assert d.call("task.get", id=task["id"])["state"] == "running"

    write_config(project, deep_merge(BASE_CONFIG, monitor_config(monitor={"interval_s": 0.2})))
    d.call("daemon.reload")
    assert d.call("daemon.status")["subsystems"]["monitor"]["interval_s"] == 0.2
    done = wait_terminal(d, task["id"])
    assert (done["state"], done["error"]) == ("failed", "killed: no output for 0.3 s")
