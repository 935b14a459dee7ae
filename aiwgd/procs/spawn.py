"""Starting a program: os.posix_spawn where it can, subprocess.Popen where it must.

Every child starts the same way (aiwgd.procs.child): argv with no shell, stdin from
/dev/null, stdout and stderr into one pipe, in a new session (its own process group),
with the environment given and nothing else of the daemon's open. Popen does all of
that in Python around a vfork; glibc's posix_spawn does the same in C, for about a
third of the daemon's CPU per start (issue 9: the spawn was the largest single cost of
a short task). posix_spawn cannot change the directory, so it is used only for a child
that runs in the daemon's own (the project root: aiwgd.daemon chdirs there at start,
the default cwd of every task); any other cwd goes through Popen.

What Popen's close_fds=True guarantees comes from the fds themselves here: every fd
Python and our libraries open is close-on-exec (PEP 446), so the child gets exactly
0, 1 and 2; tests/procs/test_spawn.py checks that against a daemon with many fds open.
Signals the daemon ignores (Python ignores SIGPIPE and SIGXFSZ) are reset to their
defaults in the child, as Popen's restore_signals does. glibc's posix_spawn leaves its
own two internal signals (32 and 33, NPTL's) ignored in the child, as in every program
it starts; glibc programs install their handlers for those when they need them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Protocol

__all__ = ["Process", "Spawned", "start"]

_POSIX_SPAWN = sys.platform == "linux" and hasattr(os, "posix_spawn")
_RESET = tuple(s for s in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if s)


class Process(Protocol):
    """What aiwgd.procs.child needs of a started program (a Popen has all of it)."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self) -> int: ...


class Spawned:
    """A child started by posix_spawn, reaped the way Popen reaps (negative: a signal)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._returncode: int | None = None

    @property
    def returncode(self) -> int | None:
        return self._returncode

    def poll(self) -> int | None:
        if self._returncode is None:
            self._reap(os.WNOHANG)
        return self._returncode

    def wait(self) -> int:
        while self._returncode is None:
            self._reap(0)
        return self._returncode

    def _reap(self, flags: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:
            # Reaped elsewhere (never by aiwgd.procs.reaper, which skips our pids): the
            # status is lost; Popen says 0 then too.
            self._returncode = 0
            return
        if pid:
            self._returncode = os.waitstatus_to_exitcode(status)


def start(argv: list[str], *, cwd: str, env: dict[str, str], out_fd: int) -> Process:
    """Start `argv` with stdout and stderr on `out_fd`, in its own session. Raises
    OSError (or ValueError for a bad env) if it cannot start, as Popen does. A bare
    program name (searched on env's PATH) goes through Popen; tasks give a path."""
    if _POSIX_SPAWN and out_fd > 2 and "/" in argv[0] and _is_own_cwd(cwd):
        pid = os.posix_spawn(
            argv[0],
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_fd, 1),
                (os.POSIX_SPAWN_DUP2, out_fd, 2),
            ],
            setsid=True,
            setsigdef=_RESET,
        )
        return Spawned(pid)
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=out_fd,
        stderr=out_fd,
        cwd=cwd,
        env=env,
        start_new_session=True,
        close_fds=True,
    )


def _is_own_cwd(cwd: str) -> bool:
    try:
        return os.getcwd() == cwd
    except OSError:  # our own directory is gone: Popen's chdir says what is wrong
        return False
