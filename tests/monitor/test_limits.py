"""Limits of tasks, enforced by the real daemon's monitor on real processes: memory,
silence (no_output_s), agent.limits for prompts only, and a task within its limits."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from aiwgd.client import RpcError
from tests.conftest import DaemonFactory
from tests.monitor.helpers import CHATTY, GROW, SILENT, monitor_config, script
from tests.taskhelp import wait_terminal
from tests.utils import Subscriber, alive, wait_for


def kills(root: Path) -> list[dict[str, Any]]:
    path = root / ".aiwg" / "daemon" / "kills.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_memory_limit_kills_the_task_and_its_retry(
    project: Path, start_daemon: DaemonFactory
) -> None:
    d = start_daemon(monitor_config())
    events = Subscriber(d, ["process.*"])
    argv = [*script(project, "grow.py", GROW), "400"]
    task = d.call("task.submit", command=argv, limits={"memory_mb": 60}, max_retries=1)

    first = events.next(timeout=15)
    data = first["data"]
    assert first["type"] == "process.killed" and first["source"] == "monitor"
    assert (data["kind"], data["id"], data["reason"]) == ("task", task["id"], "memory")
    assert data["limit"] == 60 and data["value"] > 60
    second = events.next(timeout=15)  # the retry grows too, and is killed too

    done = wait_terminal(d, task["id"])
    assert done["state"] == "failed" and done["attempt"] == 2
    assert done["error"].startswith("killed: memory ")
    assert done["error"].endswith("MiB over the limit of 60 MiB")
    for event in (first, second):
        assert not alive(event["data"]["pid"])  # really gone, not just signalled
    logged = kills(project)
    assert [(k["id"], k["reason"]) for k in logged] == [(task["id"], "memory")] * 2
    assert (project / ".aiwg" / "daemon" / "kills.jsonl").stat().st_mode & 0o077 == 0
    events.close()


def test_silent_task_is_killed_after_no_output_s(
    project: Path, start_daemon: DaemonFactory
) -> None:
    d = start_daemon(monitor_config())
    argv = script(project, "silent.py", SILENT)
    task = d.call("task.submit", command=argv, limits={"no_output_s": 0.5})
    done = wait_terminal(d, task["id"])
    assert (done["state"], done["error"]) == ("failed", "killed: no output for 0.5 s")
    assert "waiting for input" in done["output_tail"]
    (record,) = kills(project)
    assert record["reason"] == "no_output" and record["limit"] == 0.5
    assert record["value"] >= 0.5 and not alive(record["pid"])


def test_a_task_within_its_limits_is_untouched(project: Path, start_daemon: DaemonFactory) -> None:
    d = start_daemon(monitor_config())
    argv = [*script(project, "chatty.py", CHATTY), "0.8"]
    limits = {"memory_mb": 500, "no_output_s": 0.5, "max_runtime_s": 30, "max_fds": 256}
    task = d.call("task.submit", command=argv, limits=limits)
    done = wait_terminal(d, task["id"])
    assert (done["state"], done["error"]) == ("completed", None)
    assert done["limits"]["memory_mb"] == 500  # kept with the task (retries, restarts)
    assert kills(project) == []
    assert d.call("daemon.status")["subsystems"]["monitor"]["samples"] > 0


def test_agent_limits_apply_to_prompts_not_commands(
    project: Path, start_daemon: DaemonFactory
) -> None:
    silent = script(project, "silent.py", SILENT)
    agent = {"command": [*silent, "{prompt}"], "limits": {"no_output_s": 0.4}}
    d = start_daemon(monitor_config(agent=agent))
    prompt = d.call("task.submit", prompt="fix the tests")
    command = d.call("task.submit", command=script(project, "pause.py", PAUSE), timeout_s=30)
    done = wait_terminal(d, prompt["id"])
    assert (done["state"], done["error"]) == ("failed", "killed: no output for 0.4 s")
    # The command is as silent, for longer, and runs to its end: agent.limits is for
    # agents (waiting for input is their way of hanging), not for commands.
    assert wait_terminal(d, command["id"])["state"] == "completed"
    assert [k["id"] for k in kills(project)] == [prompt["id"]]


PAUSE = "import time\ntime.sleep(1.2)\n"


def test_bad_limits_are_refused_with_their_key_path(start_daemon: DaemonFactory) -> None:
    d = start_daemon(monitor_config())
    try:
        d.call("task.submit", command=[sys.executable, "-c", "pass"], limits={"memory_mb": -5})
    except RpcError as exc:
        assert exc.code == -32602 and "limits.memory_mb" in exc.message
    else:
        raise AssertionError("negative memory_mb was accepted")
    wait_for(lambda: d.call("task.list")["total"] == 0, 2, "nothing stored")
