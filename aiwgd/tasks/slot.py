"""A task's slot under the supervisor's cap, and the stop requests that reach it.

A slot is held from before the attempt starts (its running record is written first)
until every process it started is gone; then, while the attempt's end is recorded, the
task is closing and its slot no longer counts. A stop (cancel, timeout, shutdown) may
be asked for at any moment: before the attempt exists it is kept and applied as soon
as the attempt is attached.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiwgd.tasks.executors.base import Attempt, EndReason

__all__ = ["Slot", "Slots"]


@dataclass
class Slot:
    """A task holding a slot: from before its start until its processes are gone."""

    task_id: str
    executor: str | None = None  # where it runs (None: the daemon itself)
    attempt: Attempt | None = None
    reason: EndReason | None = None  # a stop asked for before the attempt existed
    job: asyncio.Task[None] | None = None

    def stop(self, reason: EndReason) -> None:
        self.reason = self.reason or reason
        if self.attempt is not None:
            self.attempt.stop(reason)

    def pending_stop(self) -> EndReason | None:
        """The stop asked for so far (a call: it may change across an await)."""
        return self.reason

    def attach(self, attempt: Attempt) -> None:
        """The attempt started; a stop asked for while it was starting applies now."""
        self.attempt = attempt
        if self.reason is not None:
            attempt.stop(self.reason)


class Slots:
    """The slots held under the cap, by task id, and the tasks closing."""

    def __init__(self) -> None:
        self.held: dict[str, Slot] = {}
        self.closing: dict[str, Slot] = {}  # slot freed, final state being recorded
        self.max_active = 0  # the most held at once since start
        # Held slots per executor (None: local): each executor has its own cap.
        self._count: dict[str | None, int] = {None: 0}

    def __len__(self) -> int:
        return len(self.held)

    def count(self, executor: str | None) -> int:
        return self._count.get(executor, 0)

    def take(self, task_id: str, executor: str | None = None) -> Slot:
        slot = self.held[task_id] = Slot(task_id, executor)
        self._count[executor] = self._count.get(executor, 0) + 1
        self.max_active = max(self.max_active, len(self.held))
        return slot

    def free(self, task_id: str) -> None:
        """Its processes are gone: the slot is free; the task closes."""
        slot = self.held.pop(task_id, None)
        if slot is not None:
            self._count[slot.executor] -= 1
            self.closing[task_id] = slot

    def closed(self, task_id: str) -> None:
        self.free(task_id)
        self.closing.pop(task_id, None)

    def jobs(self, closing: bool = False) -> list[asyncio.Task[None]]:
        """The jobs of the held slots (and of the closing ones too)."""
        slots = [*self.held.values(), *(self.closing.values() if closing else ())]
        return [s.job for s in slots if s.job is not None]
