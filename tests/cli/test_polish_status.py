"""`aiwg status` (the human output) shows the daemon's health score, and what pulls it
down: a real daemon with a service whose health check (a real program) fails."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.conftest import DaemonFactory
from tests.services.svchelp import SLEEPER, get, script, service
from tests.utils import run_cli, wait_for


def health_line(root: Path) -> str:
    r = run_cli(root, "status")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith("health:")]
    return line


def test_status_shows_the_health_score(start_daemon: DaemonFactory, project: Path) -> None:
    start_daemon()
    assert re.fullmatch(r"health:\s+100", health_line(project))


def test_status_names_an_unhealthy_service(start_daemon: DaemonFactory, project: Path) -> None:
    check = {
        "command": [sys.executable, "-c", "raise SystemExit(1)"],
        "interval_s": 0.1,
        "failures": 1,
        "action": "report",  # keep it running and unhealthy: nothing restarts it
    }
    web = service(script(project, "web", SLEEPER), health_check=check)
    d = start_daemon({"services": {"web": web}})
    wait_for(lambda: get(d, "web")["health"] == "unhealthy", 15, "web to be unhealthy")
    score = d.call("daemon.status")["health"]["score"]
    assert score < 100
    line = health_line(project)
    assert re.fullmatch(rf"health:\s+{score} \(unhealthy: service:web\)", line), line
