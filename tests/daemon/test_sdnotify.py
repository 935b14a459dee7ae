"""sd_notify as systemd's Type=notify sees it: the test is the manager. It binds its
own AF_UNIX datagram socket, starts the real daemon with NOTIFY_SOCKET (and
WATCHDOG_USEC) in its environment, and reads what arrives with deadlines."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tests.utils
from aiwgd.client import Client
from tests.conftest import DaemonFactory
from tests.utils import run_cli, wait_for

WATCHDOG_USEC = 200_000  # pings every 0.1 s


class Manager:
    """What systemd's side of NOTIFY_SOCKET receives, one datagram at a time."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.seen: list[str] = []

    def recv(self, timeout: float) -> str | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            msg = self.sock.recv(4096).decode()
        except TimeoutError:
            return None
        self.seen.append(msg)
        return msg

    def next(self, pred: Callable[[str], bool], timeout: float = 10.0) -> str:
        """The next datagram `pred` accepts (others are skipped, still in `seen`)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is not None and pred(msg):
                return msg
        raise AssertionError(f"nothing matching within {timeout}s; got {self.seen[-10:]}")

    def during(self, seconds: float) -> list[str]:
        """Everything that arrives in the next `seconds`."""
        out, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is not None:
                out.append(msg)
        return out

    def drain(self) -> None:
        while self.recv(0.001) is not None:
            pass


def not_watchdog(msg: str) -> bool:
    return msg != "WATCHDOG=1"


@pytest.fixture
def notified(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, dict[str, str]], None]:
    """Make the daemons start_daemon starts see these variables."""

    def set_env(notify_socket: str, extra: dict[str, str]) -> None:
        plain = tests.utils.env_for_tests
        env = {"NOTIFY_SOCKET": notify_socket, **extra}
        monkeypatch.setattr(tests.utils, "env_for_tests", lambda: {**plain(), **env})

    return set_env


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Manager]:
    m = Manager(str(tmp_path / "notify.sock"))
    yield m
    m.sock.close()


def test_ready_status_reload_watchdog_and_stop(
    project: Path,
    start_daemon: DaemonFactory,
    manager: Manager,
    notified: Callable[[str, dict[str, str]], None],
) -> None:
    notified(manager.sock.getsockname(), {"WATCHDOG_USEC": str(WATCHDOG_USEC)})
    (project / "gate.py").write_text(
        "import os, pathlib, time\n"
        "pathlib.Path('env.txt').write_text(os.environ.get('NOTIFY_SOCKET', 'unset'))\n"
        "while not pathlib.Path('open').exists():\n    time.sleep(0.02)\n"
    )
    (project / "svc.py").write_text("import time\nwhile True:\n    time.sleep(60)\n")
    config = {
        "services": {"svc": {"command": [sys.executable, "svc.py"], "stop_grace_s": 2}},
        "daemon": {"stop_grace_seconds": 2},
    }
    d = start_daemon(config=config, wait=False)

    # READY=1 comes only once the socket answers: one ping, no retry, must succeed.
    assert manager.next(lambda m: m.startswith("READY=1")) == f"READY=1\nMAINPID={d.pid}"
    with Client(project, timeout=5) as c:
        assert c.call("ping") == "pong"
    assert "WATCHDOG=1" in manager.seen  # the pings start before READY, with the loop

    # STATUS= follows the counts: the service comes up, a task runs and ends.
    manager.next(lambda m: m == "STATUS=running 0, queued 0, services 1/1 up")
    task = d.call("task.submit", command=[sys.executable, "gate.py"])
    manager.next(lambda m: m == "STATUS=running 1, queued 0, services 1/1 up")
    wait_for(lambda: (project / "env.txt").exists(), 10, "the task to start")
    (project / "open").touch()
    manager.next(lambda m: m == "STATUS=running 0, queued 0, services 1/1 up")
    assert d.call("task.get", id=task["id"])["state"] == "completed"
    # The task did not inherit the socket: only the daemon speaks for the unit.
    assert (project / "env.txt").read_text() == "unset"

    # WATCHDOG=1 about every WATCHDOG_USEC/2 (0.1 s): 10 in a second, give or take load.
    pings = [m for m in manager.during(1.0) if m == "WATCHDOG=1"]
    assert 5 <= len(pings) <= 13, len(pings)

    # SIGHUP: RELOADING=1 with the monotonic clock (our clock: same kernel), then READY=1.
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    d.signal(signal.SIGHUP)
    reloading = manager.next(not_watchdog)
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    head, usec = reloading.split("\n")
    assert head == "RELOADING=1" and usec.startswith("MONOTONIC_USEC=")
    assert before <= int(usec.removeprefix("MONOTONIC_USEC=")) <= after
    assert manager.next(not_watchdog) == "READY=1"

    # A refused reload (daemon.reload over RPC) still ends in READY=1: it serves on.
    d.paths.config_file.write_text('{"daemon": {"stop_grace_seconds": -1}}')
    with pytest.raises(Exception, match="stop_grace_seconds"):
        d.call("daemon.reload")
    assert manager.next(not_watchdog).startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert manager.next(not_watchdog) == "READY=1"

    out = run_cli(project, "stop")
    assert out.returncode == 0, out
    assert "STOPPING=1" in manager.seen or manager.next(lambda m: m == "STOPPING=1")
    assert d.wait_exit(20) == 0


def test_a_stopped_loop_stops_the_watchdog_pings(
    start_daemon: DaemonFactory,
    manager: Manager,
    notified: Callable[[str, dict[str, str]], None],
) -> None:
    notified(manager.sock.getsockname(), {"WATCHDOG_USEC": str(WATCHDOG_USEC)})
    d = start_daemon()
    manager.next(lambda m: m == "WATCHDOG=1")
    os.kill(d.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: d.proc is not None and _state(d.pid) == "T", 5, "the daemon to stop")
        manager.drain()  # what was sent before the stop took hold
        # Two and a half periods without a ping: systemd would kill and restart it now.
        assert [m for m in manager.during(0.25) if m == "WATCHDOG=1"] == []
    finally:
        os.kill(d.pid, signal.SIGCONT)
    manager.next(lambda m: m == "WATCHDOG=1", timeout=5)


def test_abstract_socket_and_a_watchdog_meant_for_another_process(
    start_daemon: DaemonFactory, notified: Callable[[str, dict[str, str]], None]
) -> None:
    name = f"aiwg-test-{uuid.uuid4().hex}"
    manager = Manager("\0" + name)
    try:
        # WATCHDOG_PID names another process: the watchdog is not ours to feed.
        notified("@" + name, {"WATCHDOG_USEC": str(WATCHDOG_USEC), "WATCHDOG_PID": "1"})
        d = start_daemon()
        assert manager.next(lambda m: m.startswith("READY=1")) == f"READY=1\nMAINPID={d.pid}"
        assert d.stop() == 0
        manager.next(lambda m: m == "STOPPING=1")
        assert "WATCHDOG=1" not in manager.seen
    finally:
        manager.sock.close()


def _state(pid: int) -> str:
    # /proc/PID/stat: "pid (comm) S ..."; comm may hold spaces, the state follows ")".
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
