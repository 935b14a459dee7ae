"""A service that forks 100 children, a quarter of them in sessions of their own (out
of its process group): service.stop, and then the daemon's stop, leave none of the 101
processes behind, and service.get answers while the stop is under way."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import psutil

from tests.conftest import DaemonFactory
from tests.services.svchelp import get, script, service, wait_state
from tests.utils import DaemonProc, wait_for

N = 100
# Starts N sleepers (every 4th in its own session), writes their pids, then sleeps.
FORKER = """
import os, subprocess, sys, time
kids = [
    subprocess.Popen([sys.argv[2], "300"], start_new_session=(i % 4 == 0))
    for i in range(int(sys.argv[3]))
]
with open(sys.argv[1] + ".tmp", "w") as fh:
    fh.write("\\n".join(str(k.pid) for k in kids))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
print("forked", len(kids), flush=True)
while True:
    time.sleep(1)
"""

Proc = tuple[int, float]  # pid and create time: a reused pid is not ours


def identify(pids: list[int]) -> list[Proc]:
    return [(p, psutil.Process(p).create_time()) for p in pids]


def living(procs: list[Proc]) -> list[Proc]:
    out = []
    for pid, created in procs:
        try:
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                out.append((pid, created))
        except psutil.NoSuchProcess:
            pass
    return out


def all_101(d: DaemonProc, pidfile: Path) -> list[Proc]:
    """The service's process and its N children, once all of them run."""
    wait_for(pidfile.exists, 20, f"the service to fork {N} children")
    kids = [int(p) for p in pidfile.read_text().split()]
    pid = wait_state(d, "many", "ready")["pid"]
    procs = identify([pid, *kids])
    assert len(procs) == N + 1 and len(living(procs)) == N + 1
    # Some really escaped its group (the point of the test).
    outside = [p for p, _ in procs if os.getpgid(p) != pid]
    assert len(outside) == N // 4
    return procs


def test_a_service_with_100_children_leaves_none(
    start_daemon: DaemonFactory, project: Path
) -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    pidfile = project / "kids.pids"
    path = script(project, "forker", FORKER)
    cfg = service(path, str(pidfile), sleep, str(N), ready={"log_line": f"forked {N}"})
    d = start_daemon(config={"services": {"many": cfg}})
    procs = all_101(d, pidfile)

    # The stop runs in a thread; meanwhile service.get must keep answering promptly.
    done = threading.Event()

    def stop() -> None:
        try:
            d.call("service.stop", name="many", _timeout=60)
        finally:
            done.set()

    stopper = threading.Thread(target=stop)
    stopper.start()
    slowest, answers = 0.0, 0
    while not done.is_set():
        began = time.monotonic()
        state = get(d, "many")["state"]
        slowest, answers = max(slowest, time.monotonic() - began), answers + 1
        assert state in ("ready", "running", "stopping", "stopped")
    stopper.join(60)
    assert answers >= 1 and slowest < 2.0, (answers, slowest)
    assert get(d, "many")["state"] == "stopped"
    wait_for(lambda: not living(procs), 10, "none of the 101 processes left")

    # Again, and this time the daemon's own stop ends them.
    pidfile.unlink()
    d.call("service.start", name="many")
    procs = all_101(d, pidfile)
    assert d.stop() == 0
    wait_for(lambda: not living(procs), 10, "none of the 101 processes left after daemon stop")
