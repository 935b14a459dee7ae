"""`aiwg service list` as a user reads it: CPU and memory from the monitor's latest
sample of a running service (`-` for one with no process), and its health."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from tests.conftest import DaemonFactory
from tests.services.svchelp import SLEEPER, script, service
from tests.utils import DaemonProc, env_for_tests, run_cli, wait_for


def listed(d: DaemonProc) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in d.call("service.list")["services"]}


def table(root: Path, *args: str) -> dict[str, dict[str, str]]:
    """`aiwg service list`'s rows by name (or the table `aiwg service ARGS` begins
    with), each cell under its column's title."""
    cmd = args or ("list",)
    r = run_cli(root, "service", *cmd, env={**env_for_tests(), "COLUMNS": "200"})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    head, *rows = r.stdout.split("\n\n")[0].splitlines()
    if args:  # status: the table is the two first lines, details follow
        rows = rows[:1]
    titles = head.split()
    assert titles == ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "CPU", "MEMORY", "HEALTH"]
    out = {}
    for row in rows:
        cells = row.split()
        assert len(cells) == len(titles), row
        out[cells[0]] = dict(zip(titles, cells, strict=True))
    return out


def test_service_list_shows_cpu_memory_and_health(
    start_daemon: DaemonFactory, project: Path
) -> None:
    check = {"command": [sys.executable, "-c", "pass"], "interval_s": 0.1, "failures": 1}
    sleeper = script(project, "web", SLEEPER)
    d = start_daemon(
        {
            "monitor": {"interval_s": 0.1},
            "services": {
                "web": service(sleeper, health_check=check),
                "idle": service(sleeper, autostart=False),
            },
        }
    )
    wait_for(
        lambda: (w := listed(d)["web"])["rss_bytes"] and w["health"] == "healthy",
        15,
        "a monitor sample of web, and its health check to pass",
    )
    rows = table(project)
    web, idle = rows["web"], rows["idle"]
    assert web["STATE"] in ("running", "ready") and web["PID"].isdigit()
    assert re.fullmatch(r"\d+\.\d%", web["CPU"]), web
    # A Python interpreter's RSS: megabytes, as the table writes them.
    assert re.fullmatch(r"\d+\.\dM", web["MEMORY"]), web
    assert web["HEALTH"] == "healthy"
    detail = table(project, "status", "web")["web"]
    assert re.fullmatch(r"\d+\.\d%", detail["CPU"]) and detail["MEMORY"].endswith("M")
    # No process, no sample: dashes, and no health check: unknown.
    assert (idle["STATE"], idle["PID"], idle["CPU"], idle["MEMORY"]) == ("stopped", "-", "-", "-")
    assert idle["HEALTH"] == "unknown"
