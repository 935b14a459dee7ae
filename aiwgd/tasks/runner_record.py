"""Where an attempt runs (the executor's `runner`), journalled once it has run a while.

Recovery after a kill -9 does not need the runner: the running record, durable before
the spawn, says an attempt may have started, and every process of the attempt carries
the task's mark in its environment (aiwgd.tasks.executors.local.recover stops them by
either). The runner is the quicker and sharper key for an attempt that runs long (its
group, and its leader's create time against a reused PID), so it is written only for
attempts still running after RECORD_AFTER_S. Most short commands end before that, and
skip a journal line, its fsync and the create time's /proc read (issue 9's per-task
cost). `task.get` shows a running attempt's placement at once from memory
(aiwgd.tasks.queries), recorded or not.
"""

from __future__ import annotations

import asyncio

from aiwgd.tasks.executors.base import Attempt
from aiwgd.tasks.store.store import TaskStore

RECORD_AFTER_S = 0.25
RETRY_S = 0.05  # another change of the task was on its way to disk: record right after


class RunnerRecord:
    """The runner of one attempt: written after RECORD_AFTER_S unless it ended first."""

    def __init__(self, store: TaskStore, task_id: str, attempt: Attempt) -> None:
        self._store = store
        self._task_id = task_id
        self._attempt = attempt
        self._durable: asyncio.Future[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(RECORD_AFTER_S, self._record)

    def _record(self) -> None:
        try:
            self._durable = self._store.set_now(self._task_id, runner=self._attempt.placement())
        except RuntimeError:  # a change of the task in flight (e.g. its agent session)
            self._timer = asyncio.get_running_loop().call_later(RETRY_S, self._record)

    async def settle(self) -> None:
        """The attempt ended: no record from now on; one on its way is waited for (a
        refusal by the disk raises here, as the final state would be refused too)."""
        self._timer.cancel()
        if self._durable is not None:
            await self._durable
