"""Single-instance lock and PID file.

The advisory flock is the truth: the kernel drops it when the process dies, however it
dies, so a stale PID file, lock file or socket left by kill -9 never blocks a start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from aiwgd.infra.durable import write_atomic

PROBE_WAIT_S = 0.5  # longer than any probe holds its shared lock
PROBE_RETRY_S = 0.005


class AlreadyRunning(RuntimeError):
    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        super().__init__(f"already running (PID {pid if pid else 'unknown'})")


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


class PidLock:
    def __init__(self, lock_file: Path, pid_file: Path) -> None:
        self.lock_file = lock_file
        self.pid_file = pid_file
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        # A probe (`aiwg status`, `aiwg stop`, doctor: cli/daemonctl.lock_held) holds a
        # shared lock for a moment; a daemon holds its exclusive one for good. So a
        # refusal is retried for a short while before it means "already running".
        deadline = time.monotonic() + PROBE_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise AlreadyRunning(read_pid(self.pid_file)) from None
                time.sleep(PROBE_RETRY_S)
        fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)  # children must not inherit it
        self._fd = fd

    def write_pid(self) -> None:
        write_atomic(self.pid_file, f"{os.getpid()}\n", mode=0o600)

    def release(self) -> None:
        if read_pid(self.pid_file) == os.getpid():
            self.pid_file.unlink(missing_ok=True)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None
