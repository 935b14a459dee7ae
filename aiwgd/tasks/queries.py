"""What the supervisor answers about tasks: get, list, wait, stats (no state changes).

A mixin of Supervisor (aiwgd/tasks/supervisor.py), kept apart so the supervisor
module holds what decides and changes: starts, attempts, ends, cancels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiwgd import errors
from aiwgd.agents.budget import AgentBudget
from aiwgd.config import Config
from aiwgd.tasks.executors.routing import Executors
from aiwgd.tasks.gates import Gates
from aiwgd.tasks.model import Task, TaskState
from aiwgd.tasks.queue import Queues
from aiwgd.tasks.slot import Slots
from aiwgd.tasks.store.store import TaskStore
from aiwgd.tasks.waiters import Waiters


class TaskQueries:
    # Set by Supervisor.__init__.
    config: Config
    store: TaskStore
    totals: dict[str, int]
    agents: AgentBudget
    _slots: Slots
    _queue: Queues
    _waiters: Waiters
    _gates: Gates
    _accepting: bool
    executor: Executors
    _usage_of: Callable[[str], dict[str, Any] | None] | None

    def _get(self, task_id: str) -> Task:
        task = self.store.get(task_id)
        if task is None:
            raise errors.NotFound(f"no task with id {task_id!r}", {"id": task_id})
        return task

    def find(self, task_id: str) -> Task | None:
        """The stored task, or None (e.g. pruned while a follower reads its log)."""
        return self.store.get(task_id)

    def list(
        self,
        state: str | None = None,
        agent: str | None = None,
        source: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Task], int]:
        """A page of tasks, newest first, and how many match in all."""
        return self.store.list(state=state, agent=agent, source=source, limit=limit, offset=offset)

    def log_file(self, task_id: str) -> tuple[Task, str]:
        """The task and the file that holds its whole output."""
        task = self._get(task_id)
        return task, self.store.log_file(task)

    def get(self, task_id: str) -> dict[str, Any]:
        """The task as a dict; a running task shows its live output tail."""
        task = self._get(task_id)
        out = task.to_dict()
        if task.state == TaskState.QUEUED:
            place = self._queue.position(task_id)
            out["queue_position"] = {"place": place[0], "of": place[1]} if place else None
            if out["queued_reason"] is None:
                out["queued_reason"] = self._executor_gone(task)
        slot = self._slots.held.get(task_id)
        if slot is not None and slot.attempt is not None:
            slot.attempt.ask_fresh()
            out["output_tail"] = slot.attempt.output_tail()
            if out["runner"] is None:  # not journalled yet (aiwgd.tasks.runner_record)
                out["runner"] = slot.attempt.placement()
            usage = self._usage_of(f"task:{task_id}") if self._usage_of else None
            if usage is not None:
                out["usage"] = usage
        return out

    def _executor_gone(self, task: Task) -> str | None:
        """Why a task for an executor that is not configured (any more) does not start:
        it waits for the executor to come back rather than failing, so a reload that
        drops it by mistake loses nothing."""
        if task.executor is None or task.executor in self.config.executors:
            return None
        return (
            f"executor {task.executor!r} is not configured: the task starts once a "
            "config reload brings it back, or cancel it"
        )

    async def wait(self, task_id: str, timeout_s: float) -> dict[str, Any]:
        """Return the task once terminal, or as it is when `timeout_s` runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            task = self._get(task_id)
            left = deadline - time.monotonic()
            if task.terminal or left <= 0 or not self._accepting:
                return self.get(task_id)
            await self.changed(task_id, left)

    async def changed(self, task_id: str, timeout: float) -> None:
        """Sleep until the task changes state or writes output (or `timeout`)."""
        await self._waiters.changed(task_id, timeout)

    def stats(self) -> dict[str, Any]:
        counts = self.store.counts()
        return {
            "counts": counts,
            "running": len(self._slots),
            "queued": counts.get("queued", 0),
            "waiting_retry": self._queue.waiting_retry,
            "cap": self.config.daemon.max_parallel_actions,
            "max_active": self._slots.max_active,
            "stored": sum(counts.values()),
            "totals": dict(self.totals),
            "accepting": self._accepting,
            "costs": self.agents.stats(),
            "groups": self._gates.stats(),
        }

    def status(self) -> dict[str, Any]:
        return {
            "state": "running" if self._accepting else "stopped",
            "running": len(self._slots),
            "queued": len(self._queue),
            "waiting_retry": self._queue.waiting_retry,
            "cap": self.config.daemon.max_parallel_actions,
            "max_active": self._slots.max_active,
            "counts": self.store.counts(),
            "totals": dict(self.totals),
            "executors": self.executor.health(),
        }

    def _executor_of(self, task_id: str) -> str | None:
        task = self.store.get(task_id)
        return task.executor if task is not None else None

    def _current_attempt(self, task_id: str) -> int | None:
        """The attempt of `task_id` running now, if any (a remote result is checked
        against it)."""
        task = self.store.get(task_id) if task_id in self._slots.held else None
        return task.attempt if task is not None and task.state == TaskState.RUNNING else None
