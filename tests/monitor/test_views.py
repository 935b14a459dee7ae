"""What people see of the monitor: monitor.processes (a running task's tree), the task's
own usage in task.get, monitor.system, and `aiwg monitor` (table and --json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil

from tests.conftest import DaemonFactory
from tests.monitor.helpers import HOLD, monitor_config, script
from tests.rpc.test_openrpc import Checker
from tests.taskhelp import wait_terminal
from tests.utils import run_cli, wait_for


def test_processes_task_get_and_cli_show_a_running_tree(
    project: Path, start_daemon: DaemonFactory
) -> None:
    d = start_daemon(monitor_config())
    flag = project / "done.flag"
    argv = [*script(project, "hold.py", HOLD), str(flag)]
    task = d.call("task.submit", command=argv, limits={"memory_mb": 900})
    owner = f"task:{task['id']}"

    def sampled() -> dict[str, Any] | None:
        rows = d.call("monitor.processes")["processes"]
        row = next((r for r in rows if r["owner"] == owner), None)
        # The leader and the child it started: the whole tree is counted.
        return row if row and row["processes"] == 2 and row["history"]["samples"] >= 2 else None

    try:
        row = wait_for(sampled, 15, "the task's tree in monitor.processes")
        assert (row["kind"], row["name"]) == ("task", task["id"])
        assert row["rss_bytes"] > 24 << 20  # the 24 MiB it holds, and more
        assert row["threads"] >= 2 and row["fds"] >= 3
        assert row["runtime_s"] > 0 and row["last_output_s_ago"] >= 0
        assert row["limits"]["memory_mb"] == 900
        assert row["history"]["rss_max_bytes"] >= row["rss_bytes"] > 0
        assert row["pid"] == d.call("task.get", id=task["id"])["runner"]["pid"]

        # Each answer as its declared result schema (rpc.discover) says.
        schema = Checker(d)
        schema.call("monitor.processes")
        schema.call("monitor.system")
        usage = schema.call("task.get", id=task["id"])["usage"]
        assert usage["pid"] == row["pid"] and usage["rss_bytes"] > 24 << 20

        table = run_cli(project, "monitor")
        assert table.returncode == 0, table.stderr
        header, *lines = table.stdout.splitlines()
        assert header.split()[:4] == ["OWNER", "PID", "PROCS", "CPU%"]
        (line,) = [ln for ln in lines if ln.startswith(owner)]
        assert line.split()[1:3] == [str(row["pid"]), "2"] and "mem=900M" in line

        as_json = run_cli(project, "monitor", "--json")
        assert as_json.returncode == 0, as_json.stderr
        assert [r["owner"] for r in json.loads(as_json.stdout)["processes"]] == [owner]
    finally:
        flag.touch()
    done = wait_terminal(d, task["id"])
    assert done["state"] == "completed" and "usage" not in done
    wait_for(lambda: d.call("monitor.processes")["processes"] == [], 5, "the tree to go")
    assert run_cli(project, "monitor").stdout.strip() == "no task or service process is running"


def test_system_is_present_and_sane(project: Path, start_daemon: DaemonFactory) -> None:
    d = start_daemon(monitor_config())
    s = d.call("monitor.system")
    mem, cpu, disk = s["memory"], s["cpu"], s["disk"]
    assert 0 < mem["available_bytes"] <= mem["total_bytes"]
    assert 0 <= mem["used_percent"] <= 100 and s["swap"]["total_bytes"] >= 0
    assert cpu["cores"] == len(cpu["per_core_percent"]) == psutil.cpu_count()
    assert all(0 <= p <= 100 for p in cpu["per_core_percent"])
    assert len(s["load_average"]) == 3 and all(x >= 0 for x in s["load_average"])
    assert disk["path"] == str(project) and 0 < disk["free_bytes"] <= disk["total_bytes"]

    out = run_cli(project, "monitor", "--system")
    assert out.returncode == 0, out.stderr
    assert [ln.split()[0] for ln in out.stdout.splitlines()] == [
        "memory",
        "swap",
        "cpu",
        "load",
        "disk",
    ]


def test_cli_without_a_daemon_is_one_line_and_fails(project: Path) -> None:
    out = run_cli(project, "monitor")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
