"""The run queue: ready task ids by priority (higher first), FIFO within a priority.

A task whose retry is still backing off, or with a `start_at` (run_at / delay_s) still
ahead, waits on a timer (wall-clock, so a restart honours it) and joins the heap when it
fires. Removal is lazy: a cancelled id is dropped from the ready set and skipped when it
reaches the top of the heap. A ready task may still be held back (its dependencies, its
group's cap, a paused group: aiwgd.tasks.gates): `pop(may_start)` passes over it and
leaves it where it was, so it keeps its place in line.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable


class TaskQueue:
    def __init__(self, on_ready: Callable[[], None]) -> None:
        self._on_ready = on_ready  # told when a backed-off task becomes ready
        self._heap: list[tuple[int, int, str]] = []
        self._order = itertools.count()
        self._ready: set[str] = set()
        self._delayed: dict[str, tuple[asyncio.TimerHandle, int]] = {}

    def __len__(self) -> int:
        return len(self._ready) + len(self._delayed)

    @property
    def waiting_retry(self) -> int:
        return len(self._delayed)

    def push(
        self, task_id: str, priority: int, retry_at: float | None = None, *later: float | None
    ) -> None:
        """Queue `task_id`; not before the latest of `retry_at` and `later` (wall times)."""
        due = max((t for t in (retry_at, *later) if t), default=None)
        delay = (due - time.time()) if due else 0.0
        if delay > 0:
            handle = asyncio.get_running_loop().call_later(delay, self._release, task_id)
            self._delayed[task_id] = (handle, priority)
            return
        self._ready.add(task_id)
        heapq.heappush(self._heap, (-priority, next(self._order), task_id))

    def _release(self, task_id: str) -> None:
        entry = self._delayed.pop(task_id, None)
        if entry is not None:
            self.push(task_id, entry[1])
            self._on_ready()

    def pop(self, may_start: Callable[[str], bool] | None = None) -> str | None:
        """The next ready id that `may_start` lets through, or None."""
        held: list[tuple[int, int, str]] = []
        try:
            while self._heap:
                entry = heapq.heappop(self._heap)
                task_id = entry[2]
                if task_id not in self._ready:
                    continue
                if may_start is None or may_start(task_id):
                    self._ready.discard(task_id)
                    return task_id
                held.append(entry)
            return None
        finally:
            for entry in held:  # same (priority, order) key: it keeps its place
                heapq.heappush(self._heap, entry)

    def discard(self, task_id: str) -> None:
        self._ready.discard(task_id)
        entry = self._delayed.pop(task_id, None)
        if entry is not None:
            entry[0].cancel()

    def cancel_timers(self) -> None:
        """Stop backoff timers (shutdown): `retry_at` is on disk for the next start."""
        for handle, _ in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
