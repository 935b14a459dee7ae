"""`aiwg service ...` and the services line of `aiwg status`, as a user runs them."""

from __future__ import annotations

import selectors
import subprocess
import sys
from pathlib import Path

from tests.conftest import DaemonFactory
from tests.services.svchelp import SLEEPER, script, service, wait_state
from tests.utils import alive, env_for_tests, run_cli


def test_service_commands(start_daemon: DaemonFactory, project: Path) -> None:
    path = script(project, "sleeper", SLEEPER)
    services = {"web": service(path, "w"), "db": service(path, autostart=False)}
    d = start_daemon(config={"services": services})
    pid = wait_state(d, "web", "ready")["pid"]

    out = run_cli(project, "service", "list")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == [
        "NAME",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "CPU",
        "MEMORY",
        "HEALTH",
    ]
    cells = {r.split()[0]: r.split() for r in rows}
    assert cells["web"][1:3] == ["ready", str(pid)]
    assert cells["db"][1:3] == ["stopped", "-"]

    status = run_cli(project, "status")
    assert "services: 1 ready, 1 stopped" in status.stdout

    logs = run_cli(project, "service", "logs", "web", "-n", "5")
    assert f"up {pid} ['w']" in logs.stdout

    detail = run_cli(project, "service", "status", "web")
    assert "started" in detail.stdout and "history" in detail.stdout

    stop = run_cli(project, "service", "stop", "web")
    assert stop.returncode == 0 and "web: stopped (stopped)" in stop.stdout
    assert not alive(pid)

    bad = run_cli(project, "service", "signal", "web", "HUP")
    assert bad.returncode != 0
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "no running process" in bad.stderr


def test_service_logs_follow(start_daemon: DaemonFactory, project: Path) -> None:
    body = """
    import os, time
    while not os.path.exists("more.txt"):
        time.sleep(0.02)
    print("after the follow began", flush=True)
    while True:
        time.sleep(1)
    """
    path = script(project, "late", body)
    d = start_daemon(config={"services": {"late": service(path)}})
    wait_state(d, "late", "ready")
    cmd = [sys.executable, "-m", "aiwgd.cli", "--root", str(project)]
    proc = subprocess.Popen(
        [*cmd, "service", "logs", "late", "-f"],
        stdout=subprocess.PIPE,
        text=True,
        env=env_for_tests(),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the note of its start, already there
        assert "started pid" in first
        (project / "more.txt").write_text("")
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=10), "no new line within 10 s"
        assert proc.stdout.readline() == "after the follow began\n"
    finally:
        proc.terminate()
        proc.wait(10)
