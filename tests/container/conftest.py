"""aiwgd as PID 1: real daemons started in a new PID namespace with `unshare`.

`unshare --pid --fork --mount-proc --kill-child aiwgd ...` makes the daemon the init
of a fresh namespace, as in a container without tini: every orphan in it is the
daemon's to reap, and a signal reaches it only if it has a handler. `--kill-child`
takes the namespace down with `unshare` if a test dies half-way. From outside, the
namespace's processes are the daemon's descendants (host PIDs), read from /proc.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.utils import BASE_CONFIG, DaemonProc, deep_merge, wait_for, write_config

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]


def _unshare_works() -> str:
    """'' when a PID namespace can be made here, else why not."""
    if shutil.which("unshare") is None:
        return "no unshare on PATH"
    try:
        got = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True, timeout=10)
    except OSError as exc:
        return f"unshare: {exc}"
    return "" if got.returncode == 0 else f"unshare refused: {got.stderr.strip()}"


@pytest.fixture(scope="session")
def pid_namespaces() -> None:
    why = _unshare_works()
    if why:
        pytest.skip(f"cannot make a PID namespace ({why}); needs root or user namespaces")


class InitDaemon(DaemonProc):
    """A real daemon as PID 1 of its own PID namespace. `self.proc` is `unshare`,
    whose exit status is the daemon's; `init_pid` is the daemon's host PID."""

    def __init__(self, root: Path, command: list[str] | None = None) -> None:
        super().__init__(root)
        self.command = command

    def argv(self) -> list[str]:
        inner = self.command or [
            sys.executable,
            "-m",
            "aiwgd.main",
            "--foreground",
            "--root",
            str(self.root),
        ]
        return [*UNSHARE, *inner]

    @property
    def init_pid(self) -> int:
        def child() -> int | None:
            assert self.proc is not None
            kids = _children(self.proc.pid)
            return kids[0] if kids else None

        pid: int = wait_for(child, 10, "unshare's child (the namespace's PID 1)")
        return pid

    def signal(self, sig: int) -> None:
        # To the daemon itself: unshare ignores SIGTERM and SIGINT while it waits.
        os.kill(self.init_pid, sig)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        with contextlib.suppress(ProcessLookupError):
            self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # --kill-child: the namespace goes with it
            self.proc.wait(5)
            raise AssertionError(f"aiwgd (PID 1) did not stop within {timeout}s") from None
        finally:
            self.stderr_file.close()

    def namespace(self) -> list[tuple[int, str, str]]:
        """(host pid, state letter, cmdline) of every process in the namespace but
        PID 1, zombies included (psutil's children() leaves zombies out)."""
        out: list[tuple[int, str, str]] = []
        todo = _children(self.init_pid)
        while todo:
            pid = todo.pop()
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue  # gone (and reaped) meanwhile
            out.append((pid, stat.rpartition(")")[2].split()[0], cmd.strip()))
            todo += _children(pid)
        return out


def _children(pid: int) -> list[int]:
    """Children of every thread of `pid` (an adopted orphan goes to one of them)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


InitFactory = Callable[..., InitDaemon]


@pytest.fixture
def start_init(project: Path, pid_namespaces: None) -> Iterator[InitFactory]:
    """Start daemons as PID 1 of a new namespace; each is stopped at teardown."""
    started: list[InitDaemon] = []

    def factory(
        config: dict[str, Any] | None = None, command: list[str] | None = None
    ) -> InitDaemon:
        write_config(project, deep_merge(BASE_CONFIG, config or {}))
        d = InitDaemon(project, command)
        started.append(d)
        d.start()
        return d

    yield factory
    for d in started:
        with contextlib.suppress(Exception):
            d.stop()
