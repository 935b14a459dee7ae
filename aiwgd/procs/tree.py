"""Process-tree facts for the stop ladder and crash recovery (psutil and /proc).

Blocking helpers (call them from a thread when they scan): who is alive (by PID *and*
create time, so a reused PID is never taken for ours), who is in a process group, the
descendants of a process, and killing what an earlier daemon run left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil

from aiwgd.procs import marks

GONE_POLL_S = 0.05


def create_time(pid: int) -> float | None:
    """psutil's create time of `pid` (same value), read straight from /proc when it can.

    Recorded for every spawn so a reused PID is never mistaken for our child; reading
    the one field directly (aiwgd.procs.marks) is several times cheaper than building
    a psutil.Process. None once it is gone (and reaped): nothing left to tell apart.
    """
    created = marks.create_time(pid)
    if created is not None or os.path.isdir(marks.PROC):
        return created
    try:  # no /proc here
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def alive(pid: int, create_time: float | None = None) -> bool:
    """True when `pid` runs (not a zombie) and, if given, was created at `create_time`."""
    try:
        p = psutil.Process(pid)
        if create_time is not None and abs(p.create_time() - create_time) > 0.01:
            return False  # the PID was reused by someone else
        return p.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in group `pgid`; cheap when the group is empty."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass  # someone else's process shares the id: look closer
    out = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return out


def tree_snapshot(pid: int) -> dict[int, float]:
    """Every live descendant of `pid` as {pid: create_time} (blocking: use a thread).

    Walked down /proc/PID/task/TID/children (marks.children_of), which costs the size of
    the tree: every live child snapshots its tree each second, and psutil's
    children(recursive=True) reads the whole process table, so 100 services made 100
    full scans a second (42% of a core idle, bench/services.py).
    """
    out: dict[int, float] = {}
    todo = [pid]
    while todo:
        for kid in marks.children_of(todo.pop()):
            if kid in out:
                continue  # a PID reused during the walk: never loop
            created = marks.create_time(kid)
            if created is not None and marks.state(kid) not in ("Z", "X", None):
                out[kid] = created
                todo.append(kid)
    return out


def kill_leftovers(pgid: int, create_time: float | None) -> list[int]:
    """SIGKILL what is left of a child from an earlier daemon run (blocking).

    The group is only hit when its leader still runs with the recorded create time, or
    when the leader is gone and the member was created after it (a PID is never
    reused while its group exists). Returns the PIDs signalled.
    """
    targets: dict[int, float] = {}
    leader_ok = alive(pgid, create_time) if create_time is not None else False
    # The PID runs but is someone else now: its group id may be theirs too.
    reused = not leader_ok and alive(pgid)
    if leader_ok:
        targets.update(tree_snapshot(pgid))
        targets[pgid] = create_time or 0.0
    if not reused and create_time is not None:
        for member in group_members(pgid):
            with contextlib.suppress(psutil.Error):
                ct = psutil.Process(member).create_time()
                if leader_ok or ct >= create_time - 0.01:
                    targets[member] = ct
    hit = []
    for pid, ct in targets.items():
        if alive(pid, ct or None):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                hit.append(pid)
    # Return only once they are gone (SIGKILL is not instant), bounded for D-state ones.
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(alive(p, targets[p] or None) for p in hit):
        time.sleep(GONE_POLL_S)
    return hit
