"""What a task interrupted by a daemon stop becomes is the user's choice, and counts.

Issue 8: a graceful `aiwg stop` requeued every running task and it ran again on every
start, ignoring `max_retries` (attempt 3 of a task with no retries), so an agent prompt
that edits files ran again silently. Now `on_interrupt` (per task, with defaults per
kind in `tasks.on_interrupt`: prompts fail, commands requeue) decides, and a requeue is
a retry: it needs one left and it uses it up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import DaemonFactory
from tests.taskhelp import pids_in, prog, submit, task_config, wait_terminal
from tests.utils import DaemonProc, run_cli, wait_for


def config(project: Path, **extra: Any) -> dict[str, Any]:
    """The agent records each run in `runs` and waits for `gate`."""
    cfg = task_config(cap=4, grace=0.2, **extra)
    argv = prog("--pidfile", str(project / "runs"), "--gate", str(project / "gate"))
    cfg["agent"]["command"] = [*argv, "--say", "{prompt}"]
    return cfg


def gated(project: Path, name: str) -> list[str]:
    return prog("--pidfile", str(project / f"{name}.runs"), "--gate", str(project / "gate"))


def runs(project: Path, name: str = "") -> int:
    return len(pids_in(project / (f"{name}.runs" if name else "runs")))


def aiwg_stop(d: DaemonProc) -> None:
    """A real `aiwg stop`, the way a user stops the daemon."""
    res = run_cli(d.root, "stop")
    assert res.returncode == 0, res.stderr
    d.wait_exit()


def running(d: DaemonProc, *ids: str) -> None:
    def all_running() -> bool:
        return all(d.call("task.get", id=i)["state"] == "running" for i in ids)

    wait_for(all_running, 10, f"tasks {ids} to run")


def stored(d: DaemonProc) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in json.loads(d.paths.tasks_file.read_text())["tasks"]}


def test_interrupted_prompt_fails_and_never_runs_again(
    start_daemon: DaemonFactory, project: Path
) -> None:
    cfg = config(project)
    d = start_daemon(cfg)
    task = d.call("task.submit", prompt="edit the files", max_retries=2)
    running(d, task["id"])
    aiwg_stop(d)
    assert stored(d)[task["id"]]["state"] == "failed"
    (project / "gate").touch()
    d2 = start_daemon(cfg, write=False)
    got = d2.call("task.get", id=task["id"])
    assert got["state"] == "failed" and got["attempt"] == 1
    assert "on_interrupt" in got["error"] and "interrupted" in got["error"], got["error"]
    assert runs(project) == 1 and d2.call("task.stats")["running"] == 0
    assert got["on_interrupt"] == "fail"  # the default for prompt tasks


def test_command_without_retries_is_not_run_again(
    start_daemon: DaemonFactory, project: Path
) -> None:
    cfg = config(project)
    d = start_daemon(cfg)
    task = submit(d, gated(project, "t"))
    running(d, task["id"])
    aiwg_stop(d)
    (project / "gate").touch()
    d2 = start_daemon(cfg, write=False)
    got = d2.call("task.get", id=task["id"])
    assert got["state"] == "failed" and got["attempt"] == 1
    assert "max_retries" in got["error"], got["error"]
    assert runs(project, "t") == 1
    assert got["on_interrupt"] == "requeue"  # the default for command tasks


def test_requeue_counts_against_retries(start_daemon: DaemonFactory, project: Path) -> None:
    cfg = config(project)
    d = start_daemon(cfg)
    task = submit(d, gated(project, "t"), max_retries=1)
    running(d, task["id"])
    aiwg_stop(d)
    assert stored(d)[task["id"]]["state"] == "queued"
    d2 = start_daemon(cfg, write=False)
    running(d2, task["id"])  # attempt 2 runs after the start
    assert d2.call("task.get", id=task["id"])["attempt"] == 2
    aiwg_stop(d2)
    (project / "gate").touch()
    d3 = start_daemon(cfg, write=False)
    got = d3.call("task.get", id=task["id"])
    assert got["state"] == "failed" and got["attempt"] == 2  # never attempt 3
    assert runs(project, "t") == 2


def test_explicit_requeue_from_the_cli_and_config_defaults(
    start_daemon: DaemonFactory, project: Path
) -> None:
    cfg = config(project, tasks={"on_interrupt": {"command": "fail"}})
    d = start_daemon(cfg)
    res = run_cli(
        project, "--json", "task", "submit", "--on-interrupt", "requeue", "--retries", "1", "go"
    )
    assert res.returncode == 0, res.stderr
    prompt = json.loads(res.stdout)
    assert prompt["on_interrupt"] == "requeue"
    command = submit(d, gated(project, "c"), max_retries=3)
    assert command["on_interrupt"] == "fail"  # tasks.on_interrupt.command
    running(d, prompt["id"], command["id"])
    aiwg_stop(d)
    (project / "gate").touch()
    d2 = start_daemon(cfg, write=False)
    assert wait_terminal(d2, prompt["id"])["state"] == "completed"
    assert d2.call("task.get", id=prompt["id"])["attempt"] == 2
    assert d2.call("task.get", id=command["id"])["state"] == "failed"
    assert runs(project) == 2 and runs(project, "c") == 1


def test_cli_refuses_an_unknown_policy(daemon: DaemonProc) -> None:
    res = run_cli(daemon.root, "task", "submit", "--on-interrupt", "again", "go")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--on-interrupt" in res.stderr and "requeue" in res.stderr


def test_rpc_refuses_an_unknown_policy(daemon: DaemonProc) -> None:
    from aiwgd.client import RpcError

    try:
        daemon.call("task.submit", command=["true"], on_interrupt="again")
    except RpcError as exc:
        assert exc.code == -32602 and "on_interrupt" in exc.message and "requeue" in exc.message
    else:
        raise AssertionError("on_interrupt 'again' was accepted")


def test_old_requeue_interrupted_false_still_fails_every_interrupted_task(
    start_daemon: DaemonFactory, project: Path
) -> None:
    cfg = config(project, tasks={"requeue_interrupted": False})
    d = start_daemon(cfg)
    task = submit(d, gated(project, "t"), max_retries=2)
    assert task["on_interrupt"] == "fail"
    running(d, task["id"])
    aiwg_stop(d)
    assert stored(d)[task["id"]]["state"] == "failed"
