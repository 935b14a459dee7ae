"""Processes found by a mark in their environment, and the stop ladder for them.

Standard library only: the daemon uses it, and so does the CLI (`aiwg stop` when the
daemon is dead), which must not import psutil.

Every child the daemon starts carries marks in its environment (`AIWG_TASK_ID=<id>`,
`AIWG_ROOT=<project root>`), and a program's descendants inherit them, even those
that left its process group or session (`(setsid sleep 300 &)`). The kernel shows a
process's initial environment in /proc/<pid>/environ (readable for our own uid), so
a scan finds everything a task started, wherever it went:

    from aiwgd.procs.marks import find_marked, stop_marked

    left = find_marked("AIWG_TASK_ID", where={"AIWG_ROOT": "/home/me/proj"})
    for p in left:
        print(p.pid, p.name, p.value)   # p.value: that process's AIWG_TASK_ID
    report = stop_marked(left, grace=5.0)   # SIGTERM, wait up to 5 s, SIGKILL the rest
    print(report.describe())            # "pid 4242 (sleep): SIGTERM; ..."

Limits: a process that replaced its environment at exec (`env -i ...`) carries no mark
any more (the process group and the recorded runner still find it); without /proc
(macOS, BSD) nothing is found. A process is named by (pid, create time), so a PID
reused by someone else is never signalled: on Linux the signal goes through a pidfd
opened and checked first, which closes the reuse race completely.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "MarkedProcess",
    "StopReport",
    "alive",
    "children_of",
    "create_time",
    "find_marked",
    "name_of",
    "send",
    "state",
    "stop_marked",
]

PROC = "/proc"
POLL_S = 0.05
# After SIGKILL only a process stuck in the kernel (D state) lingers; stop waiting then.
KILL_WAIT_S = 5.0

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_boot_time: float | None = None


@dataclass(frozen=True)
class MarkedProcess:
    """A live process carrying the mark: who it is and the mark's value."""

    pid: int
    create_time: float | None  # seconds since the epoch (psutil's value), None if unknown
    value: str  # the mark's value in its environment
    name: str  # its command name (/proc/<pid>/comm)
    ppid: int

    def describe(self) -> str:
        return f"pid {self.pid} ({self.name})"


@dataclass
class StopReport:
    """What `stop_marked` did: who ended after SIGTERM, who needed SIGKILL, who is left."""

    terminated: list[MarkedProcess] = field(default_factory=list)
    killed: list[MarkedProcess] = field(default_factory=list)
    survivors: list[MarkedProcess] = field(default_factory=list)  # e.g. stuck in D state

    @property
    def stopped(self) -> list[MarkedProcess]:
        return [*self.terminated, *self.killed]

    def __bool__(self) -> bool:
        return bool(self.terminated or self.killed or self.survivors)

    def describe(self) -> str:
        """One line for a log or a task record: each process and what stopped it."""
        parts = [f"{p.describe()}: SIGTERM" for p in self.terminated]
        parts += [f"{p.describe()}: SIGKILL" for p in self.killed]
        parts += [f"{p.describe()}: still running after SIGKILL" for p in self.survivors]
        return "; ".join(parts)


# ---- /proc facts ---------------------------------------------------------------------


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The name is in parentheses and may itself hold spaces or parentheses.
    return raw[raw.rfind(b")") + 2 :].split()


def state(pid: int) -> str | None:
    """The one-letter state of `pid` ("R", "S", "Z" for a zombie, ...); None if gone."""
    f = _stat_fields(pid)
    return f[0].decode() if f else None


def boot_time() -> float:
    """When the system booted (wall clock), as /proc/stat says."""
    global _boot_time
    if _boot_time is None:
        try:
            with open(f"{PROC}/stat", "rb") as fh:
                for line in fh:
                    if line.startswith(b"btime"):
                        _boot_time = float(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            pass
        if _boot_time is None:
            _boot_time = 0.0
    return _boot_time


def create_time(pid: int) -> float | None:
    """When `pid` started (seconds since the epoch, the same value psutil gives).

    None when it is gone (and reaped) or /proc cannot tell.
    """
    f = _stat_fields(pid)
    if f is None:
        return None
    try:
        return int(f[19]) / _CLK_TCK + boot_time()
    except (ValueError, IndexError):
        return None


def alive(pid: int, created: float | None = None) -> bool:
    """True while `pid` runs (a zombie is gone) and, if given, was created at `created`."""
    f = _stat_fields(pid)
    if f is None:
        if not os.path.isdir(PROC):  # no /proc here: ask the kernel the plain question
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        return False
    if f[0] in (b"Z", b"X"):
        return False
    if created is None:
        return True
    try:
        return abs(int(f[19]) / _CLK_TCK + boot_time() - created) < 0.02
    except (ValueError, IndexError):
        return False


def children_of(pid: int, main_thread_only: bool = False) -> list[int]:
    """The direct children of `pid` (zombies included), from every one of its threads.

    `main_thread_only`: only those of its main thread, one small read instead of one
    per thread. Enough for what a subreaper adopts (the kernel gives orphans to the
    first live thread of the reaper, its main thread) and for children forked by the
    main thread (the daemon's event loop). Needs CONFIG_PROC_CHILDREN (on in every
    common kernel); without it the whole process table is read instead.
    """
    try:
        tids = [str(pid)] if main_thread_only else os.listdir(f"{PROC}/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for tid in tids:
        try:
            with open(f"{PROC}/{pid}/task/{tid}/children", "rb") as fh:
                out.extend(int(x) for x in fh.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"{PROC}/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            return [p for p, parent in _parents().items() if parent == pid]
        except (OSError, ValueError):
            continue
    return out


def _parents() -> dict[int, int]:
    out: dict[int, int] = {}
    for pid in _all_pids():
        f = _stat_fields(pid)
        if f is not None:
            with contextlib.suppress(ValueError, IndexError):
                out[pid] = int(f[1])
    return out


def _all_pids() -> list[int]:
    try:
        return [int(n) for n in os.listdir(PROC) if n.isdigit()]
    except OSError:
        return []


def _descendants(pid: int, skip: Collection[int]) -> list[int]:
    """Every descendant of `pid`, leaving out the subtrees rooted at `skip`."""
    out: list[int] = []
    todo = [c for c in children_of(pid) if c not in skip]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(c for c in children_of(p) if c not in skip)
    return out


def _environ(pid: int) -> bytes | None:
    try:
        with open(f"{PROC}/{pid}/environ", "rb") as fh:
            return b"\0" + fh.read()
    except OSError:  # gone, or someone else's
        return None


def _env_value(env: bytes, name: bytes) -> str | None:
    start = env.find(b"\0" + name + b"=")
    if start < 0:
        return None
    start += len(name) + 2
    end = env.find(b"\0", start)
    return env[start : end if end >= 0 else len(env)].decode(errors="surrogateescape")


def name_of(pid: int) -> str:
    """The command name of `pid` (/proc/<pid>/comm), "?" when it cannot be read."""
    try:
        with open(f"{PROC}/{pid}/comm", "rb") as fh:
            return fh.read().strip().decode(errors="replace")
    except OSError:
        return "?"


# ---- finding -------------------------------------------------------------------------


def find_marked(
    name: str,
    value: str | None = None,
    *,
    where: Mapping[str, str] | None = None,
    under: int | None = None,
    skip: Collection[int] = (),
    without: Collection[str] = (),
) -> list[MarkedProcess]:
    """Live processes whose environment has `name` (equal to `value` when given) and
    every pair of `where`, and none of the names in `without`.

    `under`: look only among the descendants of that PID (the daemon passes its own:
    as a child subreaper it adopts every orphan of its children, so that is where
    they are, and the scan stays small); default: every process on the machine.
    `skip`: PIDs whose whole subtree is left out (e.g. other tasks' live children).
    The calling process is never returned. Blocking (it reads /proc): call it from a
    thread in async code.
    """
    want = {name.encode(): value, **{k.encode(): v for k, v in (where or {}).items()}}
    unwanted = [k.encode() for k in without]
    pids: Iterable[int] = _descendants(under, skip) if under is not None else _all_pids()
    me = os.getpid()
    out: list[MarkedProcess] = []
    for pid in pids:
        if pid == me:
            continue
        env = _environ(pid)
        if not env:
            continue  # gone, a zombie, a kernel thread or another uid's
        found = {k: _env_value(env, k) for k in want}
        if any(v is None or want[k] not in (None, v) for k, v in found.items()):
            continue
        if any(_env_value(env, k) is not None for k in unwanted):
            continue
        f = _stat_fields(pid)
        if f is None or f[0] in (b"Z", b"X"):
            continue
        try:
            ppid, created = int(f[1]), int(f[19]) / _CLK_TCK + boot_time()
        except (ValueError, IndexError):
            continue
        mark = found[name.encode()]
        assert mark is not None
        out.append(MarkedProcess(pid, created, mark, name_of(pid), ppid))
    return out


# ---- stopping ------------------------------------------------------------------------


def send(pid: int, created: float | None, sig: int) -> bool:
    """Signal `pid` if it is still the process created at `created`; False if gone."""
    pidfd: int | None = None
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):
        pidfd = None  # no pidfds here: the create-time check below narrows the race
    try:
        # With a pidfd held the process cannot be replaced under us: check, then signal it.
        if not alive(pid, created):
            return False
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _send(p: MarkedProcess, sig: int) -> bool:
    return send(p.pid, p.create_time, sig)


def _wait_gone(procs: list[MarkedProcess], seconds: float) -> list[MarkedProcess]:
    """Wait up to `seconds` (monotonic) for `procs` to end; returns those still alive."""
    deadline = time.monotonic() + seconds
    left = [p for p in procs if alive(p.pid, p.create_time)]
    while left and time.monotonic() < deadline:
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        left = [p for p in left if alive(p.pid, p.create_time)]
    return left


def stop_marked(
    procs: Iterable[MarkedProcess],
    grace: float,
    *,
    rescan: Callable[[], list[MarkedProcess]] | None = None,
) -> StopReport:
    """The stop ladder for `procs`: SIGTERM each, wait up to `grace` seconds, SIGKILL
    those still running, wait until they are gone (a zombie counts as gone).

    `rescan` (e.g. `lambda: find_marked(...)` with the same arguments) is called
    before SIGKILL and after it, until it finds nobody new: a process forked while
    its parent was being stopped carries the mark too and goes the same way. Blocking:
    call it from a thread in async code.
    """
    report = StopReport()
    seen: dict[tuple[int, float | None], MarkedProcess] = {}
    termed = []
    for p in procs:
        seen[(p.pid, p.create_time)] = p
        if _send(p, signal.SIGTERM):
            termed.append(p)
    left = _wait_gone(termed, grace) if termed else []
    report.terminated = [p for p in termed if p not in left]
    for _ in range(10):  # bounded: a fork bomb must not keep us here forever
        fresh = [q for q in (rescan() if rescan else []) if (q.pid, q.create_time) not in seen]
        for q in fresh:
            seen[(q.pid, q.create_time)] = q
        batch = [*left, *fresh]
        if not batch:
            break
        hit = [p for p in batch if _send(p, signal.SIGKILL)]
        report.killed.extend(hit)
        left = _wait_gone(hit, KILL_WAIT_S)
        report.survivors = left
        if left or rescan is None:
            break
    report.killed = [p for p in report.killed if p not in report.survivors]
    return report
