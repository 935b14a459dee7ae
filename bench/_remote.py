"""Processes bench/remote.py starts: a redis-server, `aiwg worker`s, plain RQ workers
(not a benchmark: `make bench` skips `_*.py`). Also RQ's baseline job function."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
RQ_CLI = str(Path(sys.executable).parent / "rq")


def noop() -> None:
    """RQ's baseline job: nothing, so what is timed is the queue and the worker alone."""


def env() -> dict[str, str]:
    out = {**os.environ, "PYTHONPATH": str(REPO)}
    out.pop("AIWG_ROOT", None)  # --root decides
    return out


def until(cond: Any, timeout: float, what: str, every: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


class Redis:
    """redis-server on a Unix socket in a temp dir: no TCP port, no persistence."""

    def __init__(self, program: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rds-bench-", dir="/tmp"))
        self.socket = str(self.dir / "redis.sock")
        self.url = f"unix://{self.socket}"
        self.proc = subprocess.Popen(
            [
                program, "--port", "0", "--unixsocket", self.socket,
                "--unixsocketperm", "700", "--dir", str(self.dir), "--save", "",
                "--appendonly", "no", "--daemonize", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    def client(self) -> Any:
        import redis

        return redis.Redis(unix_socket_path=self.socket, socket_timeout=30)

    def wait_ready(self) -> Redis:
        def pong() -> bool:
            if self.proc.poll() is not None:
                raise SystemExit(f"redis-server exited {self.proc.returncode}")
            with contextlib.suppress(Exception), self.client() as c:
                return bool(c.ping())
            return False

        until(pong, 10, "redis-server to answer PING")
        return self

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Workers:
    """Worker processes (each in its own process group) on one queue."""

    url: str
    queue: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def start_aiwg(self, root: Path, name: str) -> None:
        argv = [sys.executable, "-m", "aiwgd.cli", "worker", "--url", self.url]
        argv += ["--queue", self.queue, "--root", str(root), "--name", name]
        self._start(argv, name, root)

    def start_rq(self, name: str) -> None:
        """A plain `rq worker` (rq.Worker: a forked work horse per job, as ours)."""
        argv = [RQ_CLI, "worker", "--url", self.url, "--name", name, "--quiet"]
        argv += ["--serializer", "json", self.queue]  # as aiwg's queue: JSON, not pickle
        self._start(argv, name, REPO)

    def _start(self, argv: list[str], name: str, cwd: Path) -> None:
        self.procs.append(
            subprocess.Popen(
                argv,
                cwd=cwd,
                env=env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        self.names.append(name)

    def wait_registered(self, conn: Any) -> None:
        """Ready = every one of them is in RQ's worker registry for the queue."""
        from rq import Queue, Worker

        def all_in() -> bool:
            for p in self.procs:
                if p.poll() is not None:
                    raise SystemExit(f"a worker exited {p.returncode}: {p.args!r}")
            found = {w.name for w in Worker.all(queue=Queue(self.queue, connection=conn))}
            return set(self.names) <= found

        until(all_in, 30, f"workers {self.names} to register", every=0.05)

    def tree(self) -> Iterator[psutil.Process]:
        """Each worker and its descendants (horses, their children)."""
        for p in self.procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                top = psutil.Process(p.pid)
                yield top
                yield from top.children(recursive=True)

    def close(self) -> None:
        """SIGTERM (a warm stop), then SIGKILL of each group that is still there."""
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        self.procs.clear()
        self.names.clear()


def cpu_s(procs: Iterator[psutil.Process] | list[psutil.Process]) -> dict[int, float]:
    """User + system CPU seconds per live process (threads included, children not)."""
    out: dict[int, float] = {}
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            t = p.cpu_times()
            out[p.pid] = float(t.user + t.system)
    return out


def idle_usage(workers: Workers, seconds: float) -> tuple[float, float]:
    """(RSS MiB, CPU % of one core) of the workers' process trees over `seconds` idle."""
    procs = list(workers.tree())
    before = cpu_s(procs)
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    procs = list(workers.tree())
    after = cpu_s(procs)
    used = sum(after[pid] - before.get(pid, 0.0) for pid in after)
    rss = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            rss += p.memory_info().rss
    return rss / 2**20, used / elapsed * 100
