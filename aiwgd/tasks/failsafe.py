"""The supervisor's last resort: a task whose supervision broke (an internal error in
the supervisor or its executor) is recorded failed. It must never stay queued out of
the run queue, nor running with nothing behind it. If the store refuses that record too
(a full disk), it is tried again in the background, the delay doubling up to a
maximum, until the store takes it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiwgd.tasks.model import TaskState
from aiwgd.tasks.store.store import TaskStore

log = logging.getLogger("aiwgd.supervisor")

S = TaskState
RETRY_S = 1.0
RETRY_MAX_S = 30.0


class FailSafe:
    def __init__(self, store: TaskStore, on_failed: Callable[[str], None]) -> None:
        self.store = store
        self.on_failed = on_failed  # told the task id once its failed state is recorded
        self._background: set[asyncio.Task[None]] = set()

    async def record(self, task_id: str) -> None:
        """Record the task failed now, or keep trying in the background."""
        if await self._try(task_id):
            return
        job = asyncio.create_task(self._until_taken(task_id), name=f"fail-safe-{task_id}")
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    def cancel(self) -> None:
        """At stop: what is not recorded yet stays for the next start's recovery."""
        for job in list(self._background):
            job.cancel()

    async def _try(self, task_id: str) -> bool:
        try:
            current = self.store.get(task_id)
            if current is not None and current.state == S.QUEUED:
                current = await self.store.update(task_id, state=S.RUNNING)
            if current is not None and current.state == S.RUNNING:
                await self.store.update(
                    task_id, state=S.FAILED, runner=None, error="internal error while supervising"
                )
                self.on_failed(task_id)
            return True
        except Exception:
            log.exception("cannot record the failed task", extra={"task": task_id})
            return False

    async def _until_taken(self, task_id: str) -> None:
        delay = RETRY_S
        while True:
            await asyncio.sleep(delay)
            if await self._try(task_id):
                return
            delay = min(delay * 2, RETRY_MAX_S)
