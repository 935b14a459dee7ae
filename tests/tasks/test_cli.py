"""`aiwg task ...` and `aiwg chat` as a user runs them: subprocesses against a real daemon."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.taskhelp import prog, task_config, wait_terminal
from tests.utils import DaemonProc, daemon_in_tmp, env_for_tests, run_cli, wait_for


@pytest.fixture(scope="module")
def d() -> Iterator[DaemonProc]:
    with daemon_in_tmp(task_config(cap=2)) as daemon:
        yield daemon


def columns(n: int) -> dict[str, str]:
    return {**env_for_tests(), "COLUMNS": str(n)}


def cli(d: DaemonProc, *args: str) -> tuple[int, str, str]:
    r = run_cli(d.root, *args)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout, r.stderr


def test_run_wait_and_exit_codes(d: DaemonProc) -> None:
    code, out, err = cli(d, "task", "run", "--wait", "--", *prog("--say", "hi there"))
    assert code == 0 and "completed" in err
    code, out, err = cli(d, "task", "run", "--wait", "--", *prog("--exit", "4"))
    assert code == 1
    assert err.strip().splitlines()[-1].endswith("failed: exited with code 4")
    # Options after "--" belong to the command, not to aiwg.
    code, out, _ = cli(d, "--json", "task", "run", "--", *prog("--echo-args", "--json", "-x"))
    task = json.loads(out)
    assert task["command"][-3:] == ["--echo-args", "--json", "-x"] and task["source"] == "cli"
    assert json.loads(wait_terminal(d, task["id"])["output_tail"]) == ["--json", "-x"]


def test_submit_follow_streams_output(d: DaemonProc) -> None:
    code, out, err = cli(d, "task", "submit", "hello agent", "--follow", "--priority", "high")
    assert code == 0 and out == "hello agent\n"
    assert "completed" in err


def test_run_follow_failing_task(d: DaemonProc) -> None:
    code, out, err = cli(d, "task", "run", "-f", "--", *prog("--say", "boom", "--exit", "2"))
    assert code == 1 and out == "boom\n"
    assert "failed: exited with code 2" in err


def test_list_get_logs_stats(d: DaemonProc) -> None:
    long_prompt = "explain " + "very " * 60 + "carefully"
    code, out, _ = cli(d, "--json", "task", "submit", long_prompt, "--agent", "rev")
    task_id = json.loads(out)["id"]
    wait_terminal(d, task_id)
    listing = run_cli(d.root, "task", "list", "--limit", "5", env=columns(120))
    assert listing.returncode == 0
    header, first = listing.stdout.splitlines()[:2]
    assert header.split() == ["ID", "STATE", "PRIO", "AGE", "DURATION", "NAME", "WHAT"]
    assert first.split()[:2] == [task_id, "completed"] and " rev " in first
    assert first.endswith("…") and len(first) <= 120  # cut to fit $COLUMNS
    code, out, _ = cli(d, "--json", "task", "list", "--agent", "rev")
    listed = json.loads(out)
    assert listed["total"] == 1 and listed["tasks"][0]["id"] == task_id
    code, out, _ = cli(d, "task", "get", task_id)
    assert f"id:          {task_id}" in out and "state:       completed" in out
    assert "output (tail):" in out and "agent=rev" in out
    code, out, _ = cli(d, "task", "logs", task_id)
    assert out == f"{long_prompt}\nagent=rev\n"
    code, out, _ = cli(d, "task", "stats")
    assert code == 0 and "running" in out and "(cap 2)" in out
    stats = json.loads(cli(d, "task", "stats", "--json")[1])
    assert stats["cap"] == 2 and stats["counts"]["completed"] >= 1


def test_cancel_and_errors_are_one_line(d: DaemonProc) -> None:
    code, out, _ = cli(d, "--json", "task", "run", "--", *prog("--sleep", "30"))
    task_id = json.loads(out)["id"]
    wait_for(lambda: d.call("task.get", id=task_id)["state"] == "running", 10, "start")
    code, out, _ = cli(d, "task", "cancel", task_id)
    assert code == 0 and out.strip() == f"task {task_id} cancelled"
    code, out, err = cli(d, "task", "cancel", task_id)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("aiwg: error -32002: task ") and "already cancelled" in err
    code, _, err = cli(d, "task", "get", "nope")
    assert code == 1 and err == "aiwg: error -32001: no task with id 'nope'\n"
    code, _, err = cli(d, "task", "submit", "x", "--priority", "urgent")  # usage: exit 2
    assert code == 2 and '"urgent" is not a priority' in err and err.count("\n") == 1
    code, _, err = cli(d, "task", "run", "--env", "NOEQUALS", "--", "true")
    assert code == 2 and err == "aiwg: --env 'NOEQUALS': expected KEY=VALUE\n"
    code, _, err = cli(d, "task", "run", "--cwd", "/", "--", "true")
    assert code == 1 and "-32005" in err and "outside the project root" in err


def test_logs_follow_and_chat(d: DaemonProc) -> None:
    code, out, _ = cli(d, "--json", "task", "run", "--", *prog("--say", "a", "--say", "b"))
    task_id = json.loads(out)["id"]
    code, out, _ = cli(d, "task", "logs", task_id, "-f")
    assert code == 0 and out == "a\nb\n"
    code, out, _ = cli(d, "chat", "what is up")
    assert code == 0 and out == "what is up\n"
    code, out, _ = cli(d, "--json", "task", "list", "--source", "chat")
    assert json.loads(out)["tasks"][0]["prompt"] == "what is up"


def test_status_shows_running_and_queued(d: DaemonProc) -> None:
    gate = d.root / "gate-status"
    ids = [
        json.loads(cli(d, "--json", "task", "run", "--", *prog("--gate", str(gate)))[1])["id"]
        for _ in range(3)
    ]
    wait_for(lambda: d.call("task.stats")["running"] == 2, 10, "two running")
    code, out, _ = cli(d, "status")
    assert code == 0 and "tasks:   2 running, 1 queued (cap 2)" in out
    gate.touch()
    for task_id in ids:
        wait_terminal(d, task_id)


def test_not_running_daemon(tmp_path: Path) -> None:
    r = run_cli(tmp_path, "task", "list")
    assert r.returncode == 3 and r.stderr.startswith("aiwg: daemon not running")
