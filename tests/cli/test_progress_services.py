"""`aiwg service restart NAME|all` shows each instance's moves as they happen and exits
non-zero when one does not come back (issue 12, progress): real services, real CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.conftest import DaemonFactory
from tests.utils import DaemonProc, run_cli, wait_for

# Says "up" (its readiness line; the file `says` holds another) and stays, unless the
# file `broken` exists: then it exits 1.
SERVICE = """
import os, sys, time
if os.path.exists("broken"):
    sys.exit(1)
print(open("says").read() if os.path.exists("says") else "up", flush=True)
while True:
    time.sleep(60)
"""


def services(project: Path, **extra: dict[str, Any]) -> dict[str, Any]:
    script = project / "svc.py"
    script.write_text(SERVICE)
    base = {
        "command": [sys.executable, str(script)],
        "ready": {"log_line": "^up$"},
        "stop_grace_s": 2,
        "backoff": {"initial_s": 30},
    }
    return {"services": {name: {**base, **cfg} for name, cfg in extra.items()}}


def ready(d: DaemonProc, *names: str) -> None:
    def all_ready() -> bool:
        states = {s["name"]: s["state"] for s in d.call("service.list")["services"]}
        return all(states.get(n) == "ready" for n in names)

    wait_for(all_ready, 15, f"{names} to be ready")


def test_restart_shows_the_moves_until_ready(start_daemon: DaemonFactory, project: Path) -> None:
    d = start_daemon(services(project, web={}, api={}))
    ready(d, "web", "api")
    out = run_cli(project, "service", "restart", "web")
    chain = "web: ready -> stopping -> starting -> running -> ready"
    assert (out.returncode, out.stdout) == (0, chain + "\n"), out
    # On a pipe each move is a plain line of its own on stderr.
    assert out.stderr.splitlines() == [
        "restarting web",
        "web: ready -> stopping",
        "web: ready -> stopping -> starting",
        "web: ready -> stopping -> starting -> running",
    ], out.stderr
    both = run_cli(project, "--json", "service", "restart", "all")
    assert both.returncode == 0, both
    result = json.loads(both.stdout)
    assert result["ok"] is True
    assert result["moves"] == {
        n: ["ready", "stopping", "starting", "running", "ready"] for n in ("web", "api")
    }


def test_a_restart_that_ends_in_backoff_exits_1(start_daemon: DaemonFactory, project: Path) -> None:
    d = start_daemon(services(project, web={}, once={"restart": "never"}))
    ready(d, "web", "once")
    (project / "broken").touch()  # every new start exits 1 from now on
    out = run_cli(project, "service", "restart", "all")
    assert out.returncode == 1, out
    assert sorted(out.stdout.splitlines()) == [
        "once: ready -> stopping -> starting -> running -> exited",
        "web: ready -> stopping -> starting -> running -> exited -> backoff",
    ], out.stdout
    assert out.stderr.splitlines()[-1] in (
        "aiwg: restart failed: web (backoff), once (exited)",
        "aiwg: restart failed: once (exited), web (backoff)",
    ), out.stderr
    assert "Traceback" not in out.stderr and "\r" not in out.stderr and "\x1b" not in out.stderr


def test_not_ready_within_the_timeout_exits_1(start_daemon: DaemonFactory, project: Path) -> None:
    d = start_daemon(services(project, slow={}))
    ready(d, "slow")
    (project / "says").write_text("not yet")  # from now on it runs, never ready
    out = run_cli(project, "service", "restart", "slow", "--wait-timeout", "1")
    assert out.returncode == 1, out
    assert out.stdout == "slow: ready -> stopping -> starting -> running (not ready after 1 s)\n"
    assert out.stderr.splitlines()[-1] == "aiwg: restart failed: slow (not ready)", out.stderr


def test_no_wait_answers_at_once(start_daemon: DaemonFactory, project: Path) -> None:
    d = start_daemon(services(project, web={}))
    ready(d, "web")
    out = run_cli(project, "service", "restart", "web", "--no-wait")
    assert (out.returncode, out.stdout) == (0, "web: restart requested (ready)\n"), out
