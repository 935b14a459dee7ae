"""`aiwg task submit|run --limit KEY=VALUE`: task.submit's `limits` from the command
line, against a real daemon whose monitor samples every 0.1 s."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import DaemonFactory
from tests.monitor.helpers import SILENT, monitor_config, script
from tests.utils import run_cli


def test_run_with_a_limit_is_killed_and_task_get_says_why(
    project: Path, start_daemon: DaemonFactory
) -> None:
    start_daemon(monitor_config())
    argv = script(project, "silent.py", SILENT)
    limits = ["--limit", "memory_mb=500", "--limit", "no_output_s=0.5"]
    r = run_cli(project, "task", "run", "--wait", *limits, "--", *argv)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    first, *_, last = r.stderr.strip().splitlines()
    task_id = first.split()[1]  # "task ID queued|running"
    assert last == f"aiwg: task {task_id} failed: killed: no output for 0.5 s"

    got = run_cli(project, "task", "get", task_id)
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert "error:       killed: no output for 0.5 s" in lines, got.stdout
    assert any(ln.startswith("state:") and ln.split()[1] == "failed" for ln in lines)
    task = json.loads(run_cli(project, "--json", "task", "get", task_id).stdout)
    # Both --limit options reached the daemon, numbers as numbers.
    assert (task["limits"]["memory_mb"], task["limits"]["no_output_s"]) == (500, 0.5)


def test_bad_limits_are_one_readable_line(project: Path, start_daemon: DaemonFactory) -> None:
    d = start_daemon(monitor_config())
    argv = script(project, "silent.py", SILENT)
    # Invalid params, the daemon's or the shape checked here: a usage error (exit 2).
    for args, code, words in (
        (["task", "run", "--limit", "memory_mb=-1", "--", *argv], 2, "limits.memory_mb"),
        (["task", "submit", "hi", "--limit", "memory_mb=lots"], 2, "limits.memory_mb"),
        (["task", "run", "--limit", "memory_mb", "--", *argv], 2, "KEY=VALUE"),
        (["task", "submit", "hi", "--limit", "=5"], 2, "KEY=VALUE"),
    ):
        r = run_cli(project, *args)
        assert r.returncode == code and r.stdout == "", (args, r)
        assert "Traceback" not in r.stderr
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith("aiwg: ") and words in line, (args, line)
    assert d.call("task.list")["total"] == 0  # nothing was queued
