"""The daemon at its open-files limit (issue 8).

At the fd limit idle connections starved the store (`Too many open files` on submit)
and asyncio's accept loop logged thousands of tracebacks a second. Now the daemon
raises its soft limit toward the hard one at start, takes at most half of it for
connections, answers the rest with -32004 and closes them, and logs refusals once per
interval. These tests start a real daemon whose limit is low and cannot be raised.
"""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from aiwgd.client import Client
from tests.rpcfixtures import LIMIT_EXCEEDED, error_of
from tests.utils import BASE_CONFIG, DaemonProc, env_for_tests, wait_for, write_config

IDLE = 400  # more connections than the whole limit below


class LimitedDaemon(DaemonProc):
    """A real daemon started with RLIMIT_NOFILE set to (soft, hard)."""

    def __init__(self, root: Path, soft: int, hard: int) -> None:
        super().__init__(root)
        self.limits = (soft, hard)

    def start(self, wait: bool = True, timeout: float = 15.0) -> LimitedDaemon:
        limits = self.limits

        def preexec() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)

        self.stderr_file = self.stderr_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiwgd", "--root", str(self.root)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr_file,
            env=env_for_tests(),
            cwd=self.root,
            preexec_fn=preexec,
        )
        if wait:
            self.wait_ready(timeout)
        return self


@pytest.fixture
def limited(project: Path) -> Iterator[Callable[[int, int], LimitedDaemon]]:
    started: list[LimitedDaemon] = []

    def start(soft: int, hard: int) -> LimitedDaemon:
        write_config(project, BASE_CONFIG)
        d = LimitedDaemon(project, soft, hard).start()
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def open_idle(d: DaemonProc, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(d.paths.socket_address())
        out.append(s)
    return out


def answer_of(s: socket.socket) -> bytes:
    """What the daemon said to a connection that sent nothing: b"" if it is open, silent."""
    s.setblocking(False)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data or b"<closed>"
            data += chunk
    except BlockingIOError:
        return data
    except ConnectionResetError:
        return data or b"<reset>"


def log_records(d: DaemonProc) -> list[dict[str, Any]]:
    return [json.loads(line) for line in d.paths.log_file.read_text().splitlines()]


def test_idle_connections_at_the_fd_limit_do_not_starve_the_store(
    limited: Callable[[int, int], LimitedDaemon],
) -> None:
    d = limited(256, 256)  # soft == hard: nothing to raise
    with Client(d.root, timeout=20) as first:  # a client that was there before the flood
        idle = open_idle(d, IDLE)
        try:

            def settled() -> bool:
                rpc = first.call("daemon.status")["subsystems"]["rpc"]
                return bool(rpc["connections"] + rpc["refused"] == IDLE + 1)

            wait_for(settled, 10, "every connection to be taken or refused")
            answers = [answer_of(s) for s in idle]
            kept = [s for s, a in zip(idle, answers, strict=True) if a == b""]
            refused = [a for a in answers if a]
            status = first.call("daemon.status")["subsystems"]["rpc"]
            assert status["max_connections"] < 256, status  # well below the limit
            assert len(kept) + 1 == status["max_connections"] == status["connections"]
            assert len(refused) == IDLE - len(kept) and status["refused"] == len(refused)
            for answer in refused:  # each one answered with the reason, then closed
                line, _, rest = answer.partition(b"\n")
                err = error_of(json.loads(line), LIMIT_EXCEEDED)
                assert "too many connections" in err["message"]
                assert rest in (b"", b"<closed>", b"<reset>"), rest

            # The store and the executor still have descriptors: tasks run and finish.
            tasks = [first.call("task.submit", command=["true"]) for _ in range(5)]
            for t in tasks:
                done = first.call("task.wait", id=t["id"], timeout_s=20)
                assert done["state"] == "completed", done
        finally:
            for s in idle:
                s.close()
        # The idle ones gone, newcomers are served again.
        wait_for(lambda: d.call("ping") == "pong", 10, "a new connection to be served")

    records = log_records(d)
    assert not [r for r in records if "exc" in r or "Traceback" in json.dumps(r)], records[-5:]
    refusals = [r for r in records if "refused" in r["msg"]]
    assert 1 <= len(refusals) <= 3, refusals


def test_the_soft_limit_is_raised_toward_the_hard_one(
    limited: Callable[[int, int], LimitedDaemon],
) -> None:
    d = limited(256, 2048)
    soft, hard = psutil.Process(d.pid).rlimit(psutil.RLIMIT_NOFILE)
    assert (soft, hard) == (2048, 2048)
    status = d.call("daemon.status")["subsystems"]["rpc"]
    assert status["fd_limit"] == 2048
    assert status["max_connections"] == 1024  # half of it, at most the built-in 1024
