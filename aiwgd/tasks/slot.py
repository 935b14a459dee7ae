"""A task's slot under the supervisor's cap, and the stop requests that reach it.

A slot is held from before the attempt starts (its running record is written first)
until every process it started is gone. A stop (cancel, timeout, shutdown) may be
asked for at any moment of that: before the attempt exists it is kept and applied as
soon as the attempt is attached.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiwgd.tasks.executors.base import Attempt, EndReason

__all__ = ["Slot"]


@dataclass
class Slot:
    """A task holding a slot: from before its start until its processes are gone."""

    task_id: str
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
