"""Restart policy: backoff that grows and resets after stable uptime, the start limit,
programs that cannot start or exit at once, and the stop ladder."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.conftest import DaemonFactory
from tests.services.svchelp import SLEEPER, get, script, service, wait_state
from tests.utils import Subscriber, alive, wait_for


def test_restart_after_kill_backoff_grows_then_resets(
    start_daemon: DaemonFactory, project: Path
) -> None:
    path = script(project, "sleeper", SLEEPER)
    backoff = {"initial_s": 0.1, "multiplier": 3, "max_s": 5, "jitter": 0, "reset_after_s": 1.5}
    d = start_daemon(config={"services": {"web": service(path, restart="always", backoff=backoff)}})
    sub = Subscriber(d, ["service.restarting", "service.started"])
    delays = []
    pid = wait_state(d, "web", "running", "ready")["pid"]
    for _ in range(2):  # killed soon after each start: the delay grows
        os.kill(pid, signal.SIGKILL)
        delays.append(sub.next(lambda e: e["type"] == "service.restarting")["data"]["delay_s"])
        pid = sub.next(lambda e: e["type"] == "service.started")["data"]["pid"]
    assert delays == [0.1, 0.3]
    # Up longer than reset_after_s: the next crash starts the count again.
    wait_for(lambda: (get(d, "web")["uptime_s"] or 0) > 1.6, 5, "1.6 s of uptime")
    os.kill(pid, signal.SIGKILL)
    assert sub.next(lambda e: e["type"] == "service.restarting")["data"]["delay_s"] == 0.1
    inst = wait_state(d, "web", "running", "ready")
    assert inst["restarts"] == 3
    exits = [h for h in inst["history"] if h["event"] == "exited"]
    assert [h.get("signal") for h in exits] == [9, 9, 9]
    sub.close()


def test_start_limit_gives_up_and_a_start_by_hand_resets_it(
    start_daemon: DaemonFactory, project: Path
) -> None:
    path = script(project, "crash", "import sys\nprint('crashing', flush=True)\nsys.exit(3)\n")
    d = start_daemon(
        config={"services": {"bad": service(path, start_limit={"burst": 3, "interval_s": 60})}}
    )
    inst = wait_state(d, "bad", "gave_up")
    # Exits at once, yet no hot loop: exactly `burst` starts, then it gave up.
    assert inst["starts"] == 3
    assert "start limit" in inst["reason"]
    assert inst["last_exit"]["exit_code"] == 3
    assert d.call("ping") == "pong"
    d.call("service.start", name="bad")
    wait_for(lambda: get(d, "bad")["starts"] == 6, 10, "three more starts")
    inst = wait_state(d, "bad", "gave_up")
    assert inst["starts"] == 6
    started = [h for h in inst["history"] if h["event"] == "started"]
    assert len(started) == 6
    d.call("service.stop", name="bad")
    assert get(d, "bad")["state"] == "stopped"


def test_missing_program_backs_off_then_gives_up(start_daemon: DaemonFactory) -> None:
    d = start_daemon(
        config={
            "services": {
                "ghost": {
                    "command": ["/nonexistent/program", "x"],
                    "backoff": {"initial_s": 0.05, "jitter": 0},
                    "start_limit": {"burst": 2, "interval_s": 60},
                }
            }
        }
    )
    inst = wait_state(d, "ghost", "gave_up")
    failed = [h for h in inst["history"] if h["event"] == "spawn_failed"]
    assert len(failed) == 2
    assert "No such file or directory" in failed[0]["reason"]
    assert d.call("ping") == "pong"
    assert d.call("daemon.status")["state"] == "running"


def test_ignoring_sigterm_is_killed_after_the_grace(
    start_daemon: DaemonFactory, project: Path
) -> None:
    body = """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("stubborn", flush=True)
    while True:
        time.sleep(1)
    """
    path = script(project, "stubborn", body)
    d = start_daemon(
        config={"services": {"s": service(path, stop_grace_s=0.5, ready={"log_line": "stubborn"})}}
    )
    pid = wait_state(d, "s", "ready")["pid"]
    d.call("service.stop", name="s")
    assert not alive(pid)
    inst = get(d, "s")
    assert inst["state"] == "stopped"
    assert inst["last_exit"]["signal"] == signal.SIGKILL


def test_stop_signal_and_signal_method(start_daemon: DaemonFactory, project: Path) -> None:
    body = """
    import signal, sys, time
    def hup(*_):
        print("got HUP", flush=True)
    def intr(*_):
        print("got INT, leaving", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGHUP, hup)
    signal.signal(signal.SIGINT, intr)
    print("ready", flush=True)
    while True:
        time.sleep(1)
    """
    path = script(project, "sigs", body)
    d = start_daemon(
        config={"services": {"s": service(path, stop_signal="INT", ready={"log_line": "^ready"})}}
    )
    wait_state(d, "s", "ready")
    assert d.call("service.signal", name="s", signal="HUP") == {"signalled": ["s"]}
    wait_for(lambda: "got HUP" in d.call("service.logs", name="s")["lines"], 5, "HUP handled")
    d.call("service.stop", name="s")
    lines = d.call("service.logs", name="s")["lines"]
    assert "got INT, leaving" in lines
    assert get(d, "s")["last_exit"]["exit_code"] == 0


def test_independent_services_stop_in_parallel(start_daemon: DaemonFactory, project: Path) -> None:
    body = """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("stubborn", flush=True)
    while True:
        time.sleep(1)
    """
    path = script(project, "stubborn", body)
    one = service(path, stop_grace_s=1, ready={"log_line": "stubborn"})
    d = start_daemon(config={"services": {f"s{i}": one for i in range(8)}})
    for i in range(8):
        wait_state(d, f"s{i}", "ready")
    began = time.monotonic()
    d.call("service.stop", name="all")
    # One after the other, eight graces would take 8 s; in parallel about one.
    assert time.monotonic() - began < 4
    assert {s["state"] for s in d.call("service.list")["services"]} == {"stopped"}
