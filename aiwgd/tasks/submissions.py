"""How the supervisor takes a task in: validate, admit (dependencies, group, isolation,
the executor), then store and queue it, or start it at once when a slot is free.

A mixin of Supervisor (aiwgd/tasks/supervisor.py), like TaskQueries: the supervisor
module keeps what runs and ends attempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from aiwgd import errors
from aiwgd.agents.budget import AgentBudget
from aiwgd.agents.isolation import Isolation
from aiwgd.config import Config
from aiwgd.lifecycle import Lifecycle
from aiwgd.tasks.executors.routing import Executors
from aiwgd.tasks.gates import Gates, rerun_params
from aiwgd.tasks.model import Task
from aiwgd.tasks.queue import Queues
from aiwgd.tasks.slot import Slot, Slots
from aiwgd.tasks.spec import SubmitParams, parse_spec, prepare
from aiwgd.tasks.store.store import TaskStore


class Submissions:
    # Set by Supervisor.__init__.
    config: Config
    root: Path
    store: TaskStore
    lifecycle: Lifecycle
    executor: Executors
    agents: AgentBudget
    isolation: Isolation
    totals: dict[str, int]
    _slots: Slots
    _queue: Queues
    _gates: Gates
    _accepting: bool
    _submitting: int

    # Supervisor's.
    def _get(self, task_id: str) -> Task:
        raise NotImplementedError

    def _pump(self) -> None:
        raise NotImplementedError

    def _run(
        self, slot: Slot, task: Task, added: asyncio.Future[Task] | None = None
    ) -> Coroutine[Any, Any, None]:
        raise NotImplementedError

    async def submit(self, spec: dict[str, Any], source: str) -> dict[str, Any]:
        """Validate and queue a task; returns it as a dict. Raises RpcError subclasses."""
        return (await self.submit_params(parse_spec(spec), source)).to_dict()

    async def submit_params(
        self, p: SubmitParams, source: str, rerun_of: str | None = None
    ) -> Task:
        if not self._accepting or self.lifecycle.stopping.is_set():
            raise errors.ShuttingDown("the daemon is shutting down; no new tasks are taken")
        task = prepare(p, source, self.config, self.root, self.store.new_id())
        task = self._gates.admit(p, task, rerun_of)  # after, run_at / delay_s, group, name
        task = await self.isolation.admit(p, task)
        await self.executor.admit(task)  # a remote executor's Redis answers
        at_once = not self._submitting and not self.agents.must_wait(task.prompt is not None)
        at_once = at_once and self._gates.at_once(task)
        if at_once and self._slots.count(task.executor) < self.executor.cap(task.executor):
            # A slot is free and no earlier submission is still on its way to the queue
            # (a free slot means nothing queued is ready): what _pump would start next.
            return await self._start_at_once(task)
        self._submitting += 1
        try:
            task = await self.store.add(task)  # durable from here: the client may rely on it
        finally:
            self._submitting -= 1
        self.totals["submitted"] += 1
        self._queue.push(task.id, task.priority, task.start_at)
        self._pump()
        return task

    async def rerun(self, task_id: str) -> Task:
        """A new task with `task_id`'s spec, linked to it by `rerun_of`."""
        old = self._get(task_id)
        if old.lost_env():
            raise errors.Conflict(
                f"task {task_id}'s env values ({', '.join(old.lost_env())}) were not kept "
                "across a daemon restart; submit it again with them",
                {"id": task_id},
            )
        return await self.submit_params(rerun_params(old), old.source, rerun_of=task_id)

    async def _start_at_once(self, task: Task) -> Task:
        """Take a slot and record the task queued and running in one journal line: one
        fsync before the spawn instead of two. Its job owns the write, so a submitter
        that goes away does not stop the task; the submitter is told of it as queued
        (and of a refused write as for any submission) once it is durable."""
        slot = self._slots.take(task.id, task.executor)
        added = asyncio.ensure_future(self.store.add(task, start=True))
        slot.job = asyncio.create_task(self._run(slot, task, added), name=f"task-{task.id}")
        return await asyncio.shield(added)
