"""The run queue: ready task ids by priority (higher first), FIFO within a priority.

A task whose retry is still backing off waits on a timer (wall-clock `retry_at`, so a
restart honours it) and joins the heap when it fires. Removal is lazy: a cancelled id
is dropped from the ready set and skipped when it reaches the top of the heap.
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

    def push(self, task_id: str, priority: int, retry_at: float | None = None) -> None:
        delay = (retry_at - time.time()) if retry_at else 0.0
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

    def pop(self) -> str | None:
        """The next ready id, or None."""
        while self._heap:
            _, _, task_id = heapq.heappop(self._heap)
            if task_id in self._ready:
                self._ready.discard(task_id)
                return task_id
        return None

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
