"""A service's health check follows a reload, and a probe in flight never outlives the
stop of its service: real daemon, real service and probe processes, 127.0.0.1 only."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from tests.conftest import DaemonFactory
from tests.services.svchelp import SLEEPER, get, script, service, wait_state
from tests.utils import BASE_CONFIG, alive, deep_merge, wait_for, write_config

# A probe that records its pid, then hangs far past the test (its timeout is longer).
HANGING_PROBE = """
import os, sys, time
with open(sys.argv[1], "a") as fh:
    fh.write(f"{os.getpid()}\\n")
time.sleep(120)
"""


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_reload_changing_the_health_check_changes_the_health_seen(
    start_daemon: DaemonFactory, project: Path
) -> None:
    path = script(project, "sleeper", SLEEPER)
    every = {"interval_s": 0.05, "failures": 1, "action": "report", "timeout_s": 2}
    tcp = {"tcp": f"127.0.0.1:{closed_port()}", **every}
    d = start_daemon(config={"services": {"web": service(path, health_check=tcp)}})
    wait_for(lambda: get(d, "web")["health"] == "unhealthy", 10, "web unhealthy (port closed)")
    assert "Connection refused" in get(d, "web")["health_detail"]["last_detail"]

    ok = {"command": [sys.executable, "-c", "pass"], **every}
    new = {"services": {"web": service(path, health_check=ok)}}
    write_config(project, deep_merge(BASE_CONFIG, new))
    d.call("daemon.reload")
    wait_for(lambda: get(d, "web")["health"] == "healthy", 10, "web healthy (command exits 0)")
    assert get(d, "web")["health_detail"]["last_detail"] == "exit code 0"


def test_a_probe_in_flight_is_gone_when_service_stop_returns(
    start_daemon: DaemonFactory, project: Path
) -> None:
    pids = project / "probe.pids"
    probe = script(project, "probe", HANGING_PROBE)
    check = {
        "command": [sys.executable, probe, str(pids)],
        "interval_s": 0.05,
        "timeout_s": 60,
        "action": "report",
    }
    path = script(project, "sleeper", SLEEPER)
    d = start_daemon(config={"services": {"web": service(path, health_check=check)}})
    wait_state(d, "web", "running", "ready")
    wait_for(lambda: pids.exists() and pids.read_text().strip(), 10, "a probe to be running")
    started = [int(p) for p in pids.read_text().split()]
    d.call("service.stop", name="web")
    # No wait here: once the stop has answered, the probe it cut short is gone.
    assert [p for p in started if alive(p)] == []
    assert get(d, "web")["state"] == "stopped"
