"""Callers waiting for a task to change (`task.wait`, `task.logs` followers): each
sleeps on a future that the supervisor resolves when the task changes state or writes
output, so nobody polls."""

from __future__ import annotations

import asyncio
import contextlib


class Waiters:
    def __init__(self) -> None:
        self._by_task: dict[str, set[asyncio.Future[None]]] = {}

    async def changed(self, task_id: str, timeout: float) -> None:
        """Sleep until `notify(task_id)` (or `timeout`)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._by_task.setdefault(task_id, set()).add(fut)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, timeout)
        finally:
            waiting = self._by_task.get(task_id)
            if waiting is not None:
                waiting.discard(fut)
                if not waiting:
                    del self._by_task[task_id]

    def notify(self, task_id: str) -> None:
        for fut in self._by_task.pop(task_id, ()):
            if not fut.done():
                fut.set_result(None)

    def notify_all(self) -> None:
        for task_id in list(self._by_task):
            self.notify(task_id)
