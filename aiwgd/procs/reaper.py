"""The daemon as a child subreaper: orphans of its descendants come to it, and it reaps
the ones that are not its own children.

A task that double-forks (`(setsid sleep 300 &)`) leaves a process whose parent exits
at once. Without a subreaper that orphan goes to init and out of our sight; with
`PR_SET_CHILD_SUBREAPER` (Linux >= 3.4) the kernel re-parents it to the daemon, so the
end-of-attempt sweep (aiwgd.procs.child) finds it among the daemon's own descendants by
the mark in its environment. Elsewhere this is a no-op, logged once.

Adopted orphans that exit become the daemon's zombies. `reap()` (run on SIGCHLD)
collects them, but never one of our own children: those are started by
aiwgd.procs.spawn (a Popen or a posix_spawn'd `Spawned`), whose exit status
`aiwgd.procs.child` reads through a pidfd and `poll()`, and a `waitpid(-1)` here would
steal it (the owner would then report exit code 0). So the zombies are listed from
/proc and only PIDs that none of ours owns are waited for.
Anything in the daemon that starts a process must do so through aiwgd.procs.child.

As a PID namespace's init (a container's main process, no tini) every orphan in the
namespace comes to us whatever the subreaper flag says, those of `docker exec`
sessions included: the daemon reaps them all the same way. The prctl is still made
(it is harmless there), but a refusal of it is no reason to stop reaping.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import sys
from typing import Any

from aiwgd.procs import marks

__all__ = [
    "active",
    "adopted_after",
    "become_subreaper",
    "disown",
    "is_init",
    "is_subreaper",
    "own",
    "reads",
    "reap",
    "spawned_pids",
]

log = logging.getLogger("aiwgd.procs")

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

_active = False
_warned = False
# PIDs of our own children (aiwgd.procs.spawn) not yet reaped by their owner: never ours
# to wait for.
_spawned: set[int] = set()
_reads = 0  # looks at our children by reap()
_adopted = False  # the newest look found a child that is not one of _spawned


def own(pid: int) -> None:
    """A child we spawned: its exit status is its Popen's, the reaper leaves it alone."""
    _spawned.add(pid)


def disown(pid: int) -> None:
    """Its Popen has reaped it (the PID may now be reused by anyone)."""
    _spawned.discard(pid)


def spawned_pids() -> frozenset[int]:
    return frozenset(_spawned)


@functools.cache
def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _prctl(option: int, arg: Any) -> None:
    if _libc().prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def is_init() -> bool:
    """Are we the init of our PID namespace (PID 1, e.g. a container's main process)?"""
    return os.getpid() == 1


def become_subreaper() -> bool:
    """Make this process a child subreaper (or find it is init, which is one by nature);
    False (logged once) where it cannot be."""
    global _active, _warned
    if sys.platform.startswith("linux"):
        try:
            _prctl(PR_SET_CHILD_SUBREAPER, 1)
            _active = True
            return True
        except (OSError, AttributeError) as exc:
            if is_init():
                _active = True
                return True
            why = str(exc)
    else:
        why = f"not available on {sys.platform}"
    if not _warned:
        _warned = True
        log.warning(
            "not a child subreaper: processes that escape a task by double-forking are "
            "found only by a scan of every process",
            extra={"error": why},
        )
    return False


def active() -> bool:
    """True once become_subreaper() succeeded in this process."""
    return _active


def is_subreaper() -> bool:
    """What the kernel says: are orphans of our descendants re-parented to us?"""
    if not sys.platform.startswith("linux"):
        return False
    flag = ctypes.c_int(0)
    try:
        _prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag))
    except (OSError, AttributeError):
        return False
    return bool(flag.value)


def reap() -> list[int]:
    """Wait for every zombie child that is not one of our own spawned children.

    Returns the PIDs reaped. Call it from the event loop thread (where children are
    spawned), so a child is always owned before its SIGCHLD is handled.
    """
    global _reads, _adopted
    reaped = []
    adopted = False
    # Adopted orphans go to our main thread (see marks.children_of): one small read,
    # since this runs on every SIGCHLD, our own children's exits included.
    for pid in marks.children_of(os.getpid(), main_thread_only=True):
        if pid in _spawned:
            continue
        if marks.state(pid) != "Z":
            adopted = True  # a live orphan: it may carry a task's mark
            continue
        try:
            got, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if got:
            reaped.append(pid)
        else:
            adopted = True
    _reads += 1
    _adopted = adopted
    if reaped:
        log.debug("reaped adopted orphans", extra={"pids": reaped})
    return reaped


def reads() -> int:
    """How many times reap() has looked at our children so far."""
    return _reads


def adopted_after(read: int) -> bool | None:
    """Whether the newest look at our children found a live orphan, if that look came
    after `read` (a count from reads()); None if none did. A child's end check asks this
    instead of reading /proc again: the SIGCHLD of its exit makes that look, and the
    kernel hands over its orphans before it signals the exit (issue 9)."""
    return _adopted if _reads > read else None
