"""Start, stop and inspect a daemon from outside it (stdlib only)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from aiwgd.client import Client, ClientError, DaemonNotRunning
from aiwgd.config.paths import Paths

if TYPE_CHECKING:
    from aiwgd.procs.marks import StopReport

START_TIMEOUT_S = 10.0
LOCK_POLL_S = 0.05  # how often `stop` looks at the lock where it cannot wait on a pidfd
LOCK_CHECK_S = 0.5  # where it can, in case the PID file named a process not the daemon


class CtlError(Exception):
    """A failure to report as one line with exit code 1."""


def read_pid(paths: Paths) -> int | None:
    try:
        return int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def lock_held(paths: Paths) -> bool:
    """True while a live daemon holds the instance lock (the kernel's word, not a file's)."""
    try:
        fd = os.open(paths.lock_file, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our shared lock at once
    return False


def running_pid(paths: Paths) -> int | None:
    """The live daemon's PID, or None."""
    if not lock_held(paths):
        return None
    return read_pid(paths) or -1


def clean_stale(paths: Paths) -> list[str]:
    """Remove files a killed daemon left behind; only when no daemon holds the lock."""
    if lock_held(paths):
        return []
    removed = []
    for path in (paths.pid_file, paths.socket, paths.state_file):
        if path.exists() or path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(str(path))
    return removed


def _tail(path: Path, lines: int = 20, offset: int = 0) -> list[str]:
    """The last `lines` lines of `path`, looking no earlier than byte `offset`."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(offset, fh.tell() - 16384))
            return fh.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def _failure_reason(paths: Paths, log_offset: int) -> str:
    """Why a detached start failed: its own stderr, else this run's last logged error."""
    out = [ln.strip() for ln in _tail(paths.out_file, 40) if ln.strip()]
    if out and out[0].startswith("Traceback"):
        return out[-1]  # an unforeseen crash: its last line names the exception
    if out:
        # One line for the user: "invalid config FILE: a.b: ...; c.d: ..." (every error).
        head, rest = out[0].removeprefix("aiwgd: ").rstrip(":"), out[1:]
        return f"{head}: {'; '.join(rest)}" if rest else head
    for line in reversed(_tail(paths.log_file, 50, log_offset)):
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            if isinstance(rec, dict) and rec.get("level") in ("error", "critical"):
                return str(rec.get("msg", line))
    return "no reason recorded (see .aiwg/daemon/daemon.out)"


def start_detached(paths: Paths) -> int:
    """Start the daemon in its own session; return its PID once `ping` answers."""
    pid = running_pid(paths)
    if pid is not None:
        raise CtlError(f"already running (PID {pid})")
    paths.daemon_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.daemon_dir, 0o700)
    log_offset = paths.log_file.stat().st_size if paths.log_file.exists() else 0
    fd = os.open(paths.out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    cmd = [sys.executable, "-m", "aiwgd", "--root", str(paths.root), "--no-stderr-log"]
    with os.fdopen(fd, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=paths.root,
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise CtlError(f"daemon failed to start: {_failure_reason(paths, log_offset)}")
        try:
            with Client(paths.root, timeout=1.0) as c:
                if c.call("ping") == "pong":
                    return proc.pid
        except (ClientError, TimeoutError):
            pass
        time.sleep(0.05)
    raise CtlError(
        f"daemon (PID {proc.pid}) did not answer within {START_TIMEOUT_S:.0f}s: "
        f"{_failure_reason(paths, log_offset)}"
    )


def _wait_gone(paths: Paths, timeout: float, exited: int | None = None) -> bool:
    """Wait until the daemon is gone; False at the timeout.

    `exited`: a pidfd of the daemon. The kernel makes it readable at the exit itself,
    reaped or not (a zombie that a busy PID 1 has yet to reap counts as alive for
    `kill -0`). Without one (not Linux), the lock is polled: the daemon frees it last.
    """
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if exited is None:
            time.sleep(min(left, LOCK_POLL_S))
        elif _readable(exited, min(left, LOCK_CHECK_S)):
            return True
        if not lock_held(paths):
            if exited is not None:
                # Freed just before the end: wait for the end itself, for a moment only
                # in case the PID file named a process that is not the daemon.
                _readable(exited, min(deadline - time.monotonic(), LOCK_CHECK_S))
            return True
    return False


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], max(timeout, 0))[0])


def _pidfd(pid: int) -> int | None:
    """A pidfd of `pid` (readable once it exits), or None where there is none: not
    Linux >= 5.3 (macOS), or no such process any more."""
    if pid <= 0 or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


class Stopped(NamedTuple):  # not a dataclass: `aiwg status` imports this module
    """What `stop()` did."""

    pid: int | None  # the daemon stopped; None: it was not running
    cleaned: tuple[str, ...] = ()  # stale files removed
    left: StopReport | None = None  # what it did to task processes a dead daemon left


def stop(paths: Paths, timeout: float = 60.0, fast: bool = False, answer_s: float = 5.0) -> Stopped:
    """Stop the daemon and wait until it is gone. If it is dead, stop the task processes
    it left (cli/leftovers.py) and remove its stale files.

    `answer_s`: how long the daemon may take to answer `daemon.stop` before SIGTERM.
    """
    pid = running_pid(paths)
    if pid is None:
        from aiwgd.cli import leftovers

        left = leftovers.find(paths)
        if left and lock_held(paths):  # a daemon started meanwhile: what runs is its own
            return Stopped(None)
        done = leftovers.stop(paths, left, leftovers.grace_s(paths, fast)) if left else None
        return Stopped(None, tuple(clean_stale(paths)), done)
    exited = _pidfd(pid)  # before asking: the PID cannot be reused while we hold it
    try:
        try:
            with Client(paths.root, timeout=answer_s) as c:
                c.call("daemon.stop", fast=fast)
        except (ClientError, TimeoutError):
            # The socket does not answer: fall back to the signal every init system uses.
            if pid > 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        if not _wait_gone(paths, timeout, exited):
            raise CtlError(f"daemon (PID {pid}) did not stop within {timeout:.0f}s")
    finally:
        if exited is not None:
            os.close(exited)
    return Stopped(pid)


def status(paths: Paths, answer_s: float = 5.0) -> tuple[int, dict[str, Any]]:
    """(exit code per LSB: 0 running, 3 not running, 1 running but not answering, info)."""
    try:
        with Client(paths.root, timeout=answer_s) as c:
            return 0, {"running": True, "answering": True, **c.call("daemon.status")}
    except (DaemonNotRunning, ClientError, TimeoutError) as exc:
        reason = str(exc)
    snapshot: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        snapshot = json.loads(paths.state_file.read_text())
    pid = running_pid(paths)
    if pid is None:
        from aiwgd.cli import leftovers  # only now: it costs the fast path ~20 ms

        left = [p.to_dict() for p in leftovers.find(paths)]
        return 3, {"running": False, "last_state": snapshot or None, "left": left}
    return 1, {
        "running": True,
        "answering": False,
        "pid": pid,
        "error": reason,
        "last_state": snapshot or None,
    }
