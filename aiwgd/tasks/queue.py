"""The run queue: ready task ids by priority (higher first), FIFO within a priority.

A task whose retry is still backing off, or with a `start_at` (run_at / delay_s) still
ahead, waits on a timer (wall-clock, so a restart honours it) and joins the heap when it
fires. Removal is lazy: a cancelled id is dropped from the ready set and skipped when it
reaches the top of the heap. A ready task may still be held back (its dependencies, its
group's cap, a paused group: aiwgd.tasks.gates): `pop(hold)` parks it under what holds
it and `unpark()` puts it back with its old (priority, arrival) key, so it keeps its
place in line and a pump does not look again at every held task.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable

# Why a ready task is held back, e.g. ("after", a task id) or ("group", a name).
Key = tuple[str, str]


class TaskQueue:
    def __init__(self, on_ready: Callable[[], None]) -> None:
        self._on_ready = on_ready  # told when a backed-off task becomes ready
        self._heap: list[tuple[int, int, str]] = []
        self._order = itertools.count()
        self._ready: set[str] = set()
        self._delayed: dict[str, tuple[asyncio.TimerHandle, int]] = {}
        self._parked: dict[Key, list[tuple[int, int, str]]] = {}  # see pop()

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

    def pop(self, hold: Callable[[str], Key | None] | None = None) -> str | None:
        """The next ready id that `hold` lets through (None from it), or None.

        An id `hold` keeps (it returns why: a key) is parked under that key, out of the
        heap, until `unpark` finds the key no longer holds."""
        while self._heap:
            entry = heapq.heappop(self._heap)
            task_id = entry[2]
            if task_id not in self._ready:
                continue
            key = hold(task_id) if hold is not None else None
            if key is None:
                self._ready.discard(task_id)
                return task_id
            self._parked.setdefault(key, []).append(entry)
        return None

    def position(self, task_id: str) -> tuple[int, int] | None:
        """(place, of): where a ready task stands among the ready ones, in the order
        they start (priority, then arrival; held ones keep their place, as unpark puts
        them back there). None if it is not ready (backing off, not queued). O(n): for
        one task.get, never on the hot path."""
        if task_id not in self._ready:
            return None
        keys: dict[str, tuple[int, int]] = {}
        parked = (e for entries in self._parked.values() for e in entries)
        for prio, order, tid in itertools.chain(self._heap, parked):
            if tid in self._ready and (tid not in keys or (prio, order) < keys[tid]):
                keys[tid] = (prio, order)
        mine = keys.get(task_id)
        if mine is None:
            return None
        return 1 + sum(1 for key in keys.values() if key < mine), len(keys)

    def unpark(self, blocked: Callable[[Key], bool]) -> None:
        """Back into the heap, in their places, the ids parked under keys that no longer
        hold (`blocked(key)` false)."""
        for key in list(self._parked):
            if not blocked(key):
                for entry in self._parked.pop(key):  # same (priority, order) key
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


class Queues:
    """One TaskQueue per executor (None: the daemon itself), each drained under its own
    cap, so a full executor never holds back another's tasks and a pump looks only at
    queues with room. `where(task_id)` names a queued task's executor."""

    def __init__(self, on_ready: Callable[[], None], where: Callable[[str], str | None]) -> None:
        self._on_ready = on_ready
        self._where = where
        self.local = TaskQueue(on_ready)
        self.by_executor: dict[str | None, TaskQueue] = {None: self.local}

    def of(self, executor: str | None) -> TaskQueue:
        queue = self.by_executor.get(executor)
        if queue is None:
            queue = self.by_executor[executor] = TaskQueue(self._on_ready)
        return queue

    def __len__(self) -> int:
        return sum(len(q) for q in self.by_executor.values())

    @property
    def waiting_retry(self) -> int:
        return sum(q.waiting_retry for q in self.by_executor.values())

    def push(
        self, task_id: str, priority: int, retry_at: float | None = None, *later: float | None
    ) -> None:
        self.of(self._where(task_id)).push(task_id, priority, retry_at, *later)

    def position(self, task_id: str) -> tuple[int, int] | None:
        """Its place among the tasks waiting for the same executor."""
        return self.of(self._where(task_id)).position(task_id)

    def unpark(self, blocked: Callable[[Key], bool]) -> None:
        for queue in self.by_executor.values():
            queue.unpark(blocked)

    def discard(self, task_id: str) -> None:
        self.of(self._where(task_id)).discard(task_id)

    def cancel_timers(self) -> None:
        for queue in self.by_executor.values():
            queue.cancel_timers()
