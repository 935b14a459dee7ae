"""One registry of the daemon's live child processes.

Whatever spawns a program (the tasks' local executor, the service manager) adds the
child here for as long as it lives, saying who owns it (`task:<id>`, `service:<name>`),
its resource limits and whom to tell when it is over one. The resource monitor
(aiwgd.monitor) samples every registered tree, keeps the latest usage on the entry
(`usage_of`, e.g. for `task.get`) and calls `on_over`; the hung-process watchdog reads
the registry to spare the daemon's own children; `daemon.status` shows how many are live.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiwgd.config.limits import Limits
from aiwgd.procs.child import Child

log = logging.getLogger("aiwgd.procs")

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
    # The monitor's latest sample of the tree (None until the first one).
    usage: dict[str, Any] | None = None

    @property
    def pid(self) -> int:
        return self.child.pid


class ChildRegistry:
    """Live children by leader PID; add at spawn, discard once really gone."""

    def __init__(self) -> None:
        self._live: dict[int, LiveChild] = {}
        self._when_busy: list[Callable[[], None]] = []

    def when_busy(self, fn: Callable[[], None]) -> None:
        """Call `fn` each time a child registers into an empty registry (the monitor
        sleeps while there is nothing to sample)."""
        self._when_busy.append(fn)

    def add(
        self,
        child: Child,
        owner: str,
        limits: Limits | None = None,
        on_over: OnOver | None = None,
    ) -> LiveChild:
        """Register `child` right after its spawn; its kernel-enforceable limits are
        set now (see `enforce_in_kernel`), the rest are the monitor's to watch."""
        entry = LiveChild(owner, child, limits, on_over)
        was_empty = not self._live
        self._live[child.pid] = entry
        if was_empty:
            for fn in self._when_busy:
                fn()
        if limits is not None:
            enforce_in_kernel(child.pid, limits)
        return entry

    def discard(self, child: Child) -> None:
        entry = self._live.get(child.pid)
        if entry is not None and entry.child is child:  # a reused PID is someone else
            del self._live[child.pid]

    def holds(self, entry: LiveChild) -> bool:
        """Whether `entry` is still registered (not discarded, not replaced)."""
        return self._live.get(entry.pid) is entry

    def __iter__(self) -> Iterator[LiveChild]:
        return iter(list(self._live.values()))

    def __len__(self) -> int:
        return len(self._live)

    def owners(self) -> list[str]:
        return [e.owner for e in self._live.values()]

    def usage_of(self, owner: str) -> dict[str, Any] | None:
        """The latest sampled usage of `owner`'s live child (None: none, or not sampled)."""
        for entry in self._live.values():
            if entry.owner == owner:
                return entry.usage
        return None


def enforce_in_kernel(pid: int, limits: Limits) -> None:
    """Set what the kernel can enforce itself, with prlimit right after the spawn.

    Not preexec_fn: it would turn off vfork for every spawn. The cost is a short window
    before this call in which the child may fork without the limit; the monitor still
    sees those processes. Only `max_fds` maps onto an rlimit: RLIMIT_NOFILE caps each
    process below the tree's total, which is never looser. The others do not:
    RLIMIT_CPU counts CPU seconds, not the wall time max_runtime_s means; RLIMIT_AS
    limits address space, which node, the JVM and Go reserve far beyond what they use
    (they would fail at start under any sensible memory_mb); RLIMIT_RSS is ignored by
    Linux. Those stay with the monitor's samples and the stop ladder.
    """
    if limits.max_fds is None:
        return
    try:
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        inf = resource.RLIM_INFINITY
        new_hard = limits.max_fds if hard == inf else min(hard, limits.max_fds)
        new_soft = new_hard if soft == inf else min(soft, new_hard)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (new_soft, new_hard))
    except (OSError, ValueError) as exc:
        # Gone already, or not ours to limit: the monitor's fd count still applies.
        log.warning("cannot set RLIMIT_NOFILE", extra={"pid": pid, "error": str(exc)})
