"""Nothing a service started outlives it: daemon stop, daemon kill -9 then start, and
programs that daemonize."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.conftest import DaemonFactory
from tests.services.svchelp import SLEEPER, get, marked, script, service, wait_state
from tests.utils import alive, wait_for

# Forks a child that leaves the session and lives on; the parent exits 0 at once.
DAEMONIZER = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        if len(sys.argv) > 1:
            with open(sys.argv[1], "w") as fh:
                fh.write(str(os.getpid()))
        print("daemon up", os.getpid(), flush=True)
        while True:
            time.sleep(1)
    os._exit(0)
os.wait()
sys.exit(0)
"""


def test_kill9_then_start_stops_the_previous_generation(
    start_daemon: DaemonFactory, project: Path
) -> None:
    path = script(project, "sleeper", SLEEPER)
    config = {"services": {"web": service(path), "idle": service(path, autostart=False)}}
    d1 = start_daemon(config=config)
    old = wait_state(d1, "web", "ready")["pid"]
    assert get(d1, "idle")["state"] == "stopped"
    d1.kill9()
    assert alive(old)  # orphaned, still running, until the next daemon starts
    d2 = start_daemon(config=config, write=False)
    assert not alive(old)
    listed = d2.call("service.list")
    assert [(r["instance"], r["pid"]) for r in listed["recovered"]] == [("web", old)]
    new = wait_state(d2, "web", "ready")
    assert new["pid"] != old
    recovered = [h for h in new["history"] if h["event"] == "recovered"]
    assert recovered and recovered[0]["pid"] == old
    # History survived the crash: the first run's start is still there.
    assert next(h["pid"] for h in new["history"] if h["event"] == "started") == old
    assert d2.call("daemon.status")["subsystems"]["services"]["recovered"] == 1
    d2.stop()
    assert marked(project) == []


def test_daemonizing_program_is_followed_and_stopped(
    start_daemon: DaemonFactory, project: Path
) -> None:
    path = script(project, "forker", DAEMONIZER)
    d = start_daemon(config={"services": {"bg": service(path)}})
    inst = wait_state(d, "bg", "ready")
    follower = wait_for(lambda: [p.pid for p in marked(project, "bg")], 5, "the daemonized one")
    assert inst["pid"] == follower[0]
    assert get(d, "bg")["starts"] == 1
    d.call("service.stop", name="bg")
    assert not alive(follower[0])
    assert get(d, "bg")["state"] == "stopped"
    assert marked(project) == []


def test_pid_file_names_the_main_process_and_its_exit_restarts(
    start_daemon: DaemonFactory, project: Path
) -> None:
    path = script(project, "forker", DAEMONIZER)
    cfg = service(path, str(project / "bg.pid"), pid_file="bg.pid", restart="always")
    d = start_daemon(config={"services": {"bg": cfg}})
    pid = wait_state(d, "bg", "ready")["pid"]
    assert int((project / "bg.pid").read_text()) == pid
    os.kill(pid, signal.SIGKILL)  # the followed process dies: the service restarts
    wait_for(lambda: get(d, "bg")["starts"] == 2, 10, "a second start")
    new = wait_state(d, "bg", "ready")["pid"]
    assert new != pid and alive(new)
