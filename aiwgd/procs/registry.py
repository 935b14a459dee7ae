"""One registry of the daemon's live child processes, and one sampler of their use.

Whatever spawns a program (the tasks' local executor today, services next) adds the
child here for as long as it lives, saying who owns it (`task:<id>`, `service:<name>`).
The resource monitor and the hung-process watchdog read this registry and its samples
instead of scanning /proc again; `daemon.status` shows how many children are live.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psutil

from aiwgd.config.limits import Limits
from aiwgd.procs.child import Child

# What the monitor calls, on the event loop, when a child's tree is over a limit:
# on_over(reason, detail), e.g. ("memory", "memory 612 MiB over the limit of 500 MiB").
# The owner stops the child (stop ladder) and applies its own policy (restart, retry).
OnOver = Callable[[str, str], None]


@dataclass
class LiveChild:
    """A registered child: its leader, group, owner, limits and who to tell when over."""

    owner: str
    child: Child
    limits: Limits | None = None
    on_over: OnOver | None = None
    registered_mono: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.child.pid


@dataclass(frozen=True)
class Usage:
    """One child's tree at one moment: processes, CPU (% of one core) and memory."""

    owner: str
    pid: int
    processes: int
    cpu_percent: float
    rss_bytes: int


class ChildRegistry:
    """Live children by leader PID; add at spawn, discard once really gone."""

    def __init__(self) -> None:
        self._live: dict[int, LiveChild] = {}

    def add(
        self,
        child: Child,
        owner: str,
        limits: Limits | None = None,
        on_over: OnOver | None = None,
    ) -> LiveChild:
        entry = LiveChild(owner, child, limits, on_over)
        self._live[child.pid] = entry
        return entry

    def discard(self, child: Child) -> None:
        entry = self._live.get(child.pid)
        if entry is not None and entry.child is child:  # a reused PID is someone else
            del self._live[child.pid]

    def __iter__(self) -> Iterator[LiveChild]:
        return iter(list(self._live.values()))

    def __len__(self) -> int:
        return len(self._live)

    def owners(self) -> list[str]:
        return [e.owner for e in self._live.values()]


class Sampler:
    """CPU and memory of every registered child's tree (blocking: call from a thread).

    psutil reports CPU as the change since the previous call on the same Process
    object, so those objects are kept between samples, keyed by (pid, create time).
    """

    def __init__(self, registry: ChildRegistry) -> None:
        self.registry = registry
        self._procs: dict[tuple[int, float], psutil.Process] = {}

    def _process(self, pid: int) -> psutil.Process | None:
        try:
            fresh = psutil.Process(pid)
            key = (pid, fresh.create_time())
        except psutil.Error:
            return None
        return self._procs.setdefault(key, fresh)

    def sample(self) -> list[Usage]:
        seen: set[tuple[int, float]] = set()
        out = []
        for entry in self.registry:
            pids = {entry.pid, *entry.child.known}
            with contextlib.suppress(psutil.Error):
                pids.update(p.pid for p in psutil.Process(entry.pid).children(recursive=True))
            count, cpu, rss = 0, 0.0, 0
            for pid in pids:
                proc = self._process(pid)
                if proc is None:
                    continue
                try:
                    with proc.oneshot():
                        cpu += proc.cpu_percent(None)
                        rss += proc.memory_info().rss
                    seen.add((pid, proc.create_time()))
                    count += 1
                except psutil.Error:
                    continue
            out.append(Usage(entry.owner, entry.pid, count, round(cpu, 1), rss))
        # Forget processes that are gone, so the cache never outgrows the live set.
        for key in [k for k in self._procs if k not in seen]:
            del self._procs[key]
        return out
