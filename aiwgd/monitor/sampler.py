"""CPU, memory, open files and threads of each registered child's tree (blocking: the
monitor calls it in a worker thread, never on the event loop).

What to sample is taken on the loop (`targets()`): the registry and each child's known
descendants change there, so the thread only ever reads copies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from aiwgd.procs import marks
from aiwgd.procs.registry import ChildRegistry, LiveChild


@dataclass(frozen=True)
class Target:
    """One child to sample: its owner, leader and the descendants seen so far."""

    owner: str
    pid: int
    known: frozenset[int]


@dataclass(frozen=True)
class Usage:
    """One child's tree at one moment: processes, CPU (% of one core) and memory."""

    owner: str
    pid: int
    processes: int
    cpu_percent: float
    rss_bytes: int
    fds: int = 0
    threads: int = 0
    stopped: bool = False  # the leader is stopped (SIGSTOP: a paused task)


def targets(entries: Iterable[LiveChild]) -> list[Target]:
    """What to sample, copied on the event loop."""
    return [Target(e.owner, e.pid, frozenset(e.child.known)) for e in entries]


class Sampler:
    """psutil reports CPU as the change since the previous call on the same Process
    object, so those objects are kept between samples, keyed by (pid, create time)."""

    def __init__(self, registry: ChildRegistry | None = None) -> None:
        self.registry = registry
        self._procs: dict[tuple[int, float], psutil.Process] = {}

    def _process(self, pid: int) -> psutil.Process | None:
        try:
            fresh = psutil.Process(pid)
            key = (pid, fresh.create_time())
        except psutil.Error:
            return None
        return self._procs.setdefault(key, fresh)

    def sample(self, what: list[Target] | None = None) -> list[Usage]:
        """One Usage per target (by default: every registered child), in order."""
        if what is None:
            what = targets(self.registry or ())
        seen: set[tuple[int, float]] = set()
        out = [self._tree(t, seen) for t in what]
        # Forget processes that are gone, so the cache never outgrows the live set.
        for key in [k for k in self._procs if k not in seen]:
            del self._procs[key]
        return out

    def _tree(self, target: Target, seen: set[tuple[int, float]]) -> Usage:
        pids = {target.pid, *target.known}
        todo = list(pids)
        # Every descendant of the leader and of those that left its group, read down
        # /proc/PID/task/*/children: the size of the tree, not of the process table.
        while todo:
            for kid in marks.children_of(todo.pop()):
                if kid not in pids:
                    pids.add(kid)
                    todo.append(kid)
        count, cpu, rss, fds, threads, stopped = 0, 0.0, 0, 0, 0, False
        for pid in pids:
            proc = self._process(pid)
            if proc is None:
                continue
            try:
                with proc.oneshot():
                    status = proc.status()
                    if status == psutil.STATUS_ZOMBIE:
                        continue  # exited, not yet reaped: it uses nothing
                    if pid == target.pid:
                        stopped = status == psutil.STATUS_STOPPED
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                    threads += proc.num_threads()
                    with contextlib.suppress(psutil.Error):
                        fds += proc.num_fds()
                seen.add((pid, proc.create_time()))
                count += 1
            except psutil.Error:
                continue
        return Usage(target.owner, target.pid, count, round(cpu, 1), rss, fds, threads, stopped)
