"""Pausing a running attempt: SIGSTOP to its process group, SIGCONT to continue it.

A paused task's timeout clock stops too, so time spent paused never counts against
`timeout_s`: the supervisor runs each attempt's timeout on a `TimeoutClock` held here
rather than on the executor's own timer. A stopped process queues SIGTERM until it is
continued, so whoever takes a task down the stop ladder (cancel, the daemon's stop)
calls `proceed()` first. Only the attempt's own group is stopped: a process that left it
(setsid) keeps running, as it does for the stop ladder's first step.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from aiwgd import errors
from aiwgd.tasks.groups import Groups
from aiwgd.tasks.model import Task, TaskState
from aiwgd.tasks.slot import Slot
from aiwgd.tasks.store.store import TaskStore

__all__ = ["PauseControl", "Pauses", "TimeoutClock"]


class TimeoutClock:
    """Calls `on_expire` once `timeout` seconds of unpaused (monotonic) time went by."""

    def __init__(self, timeout: float, on_expire: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_expire = on_expire
        self._left = timeout
        self._since = time.monotonic()
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(timeout, on_expire)

    def pause(self) -> None:
        if self._handle is None:
            return
        self._handle.cancel()
        self._handle = None
        self._left = max(0.0, self._left - (time.monotonic() - self._since))

    def resume(self) -> None:
        if self._handle is not None:
            return
        self._since = time.monotonic()
        self._handle = self._loop.call_later(self._left, self._on_expire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class Pauses:
    """The running attempts' timeout clocks, and which of them are paused (by pgid)."""

    def __init__(self) -> None:
        self._clocks: dict[str, TimeoutClock] = {}
        self._paused: dict[str, int] = {}  # task id -> the process group it stopped

    def clock(self, task_id: str, timeout: float, on_expire: Callable[[], None]) -> TimeoutClock:
        clock = self._clocks[task_id] = TimeoutClock(timeout, on_expire)
        return clock

    def ended(self, task_id: str) -> None:
        """The attempt is gone: nothing of it is left to continue."""
        clock = self._clocks.pop(task_id, None)
        if clock is not None:
            clock.cancel()
        self._paused.pop(task_id, None)

    def running(self, task_id: str) -> bool:
        """Whether the task has an attempt on a clock (it can be paused)."""
        return task_id in self._clocks

    def paused(self, task_id: str) -> bool:
        return task_id in self._paused

    def pause(self, task_id: str, pgid: int) -> bool:
        """Stop the attempt's group; False if it already was (or has no clock)."""
        clock = self._clocks.get(task_id)
        if clock is None or task_id in self._paused:
            return False
        try:
            os.killpg(pgid, signal.SIGSTOP)
        except ProcessLookupError:
            return False  # already gone: its end is on its way
        clock.pause()
        self._paused[task_id] = pgid
        return True

    def proceed(self, task_id: str) -> bool:
        """Continue a paused attempt (its clock too); False if it was not paused."""
        pgid = self._paused.pop(task_id, None)
        if pgid is None:
            return False
        with contextlib.suppress(ProcessLookupError):  # gone meanwhile: nothing to continue
            os.killpg(pgid, signal.SIGCONT)
        clock = self._clocks.get(task_id)
        if clock is not None:
            clock.resume()
        return True

    def proceed_all(self) -> None:
        """Continue every paused attempt (the daemon is about to stop them all)."""
        for task_id in list(self._paused):
            self.proceed(task_id)


class PauseControl:
    """task.pause / task.resume by id or by group: what they answer and do."""

    def __init__(
        self,
        pauses: Pauses,
        groups: Groups,
        store: TaskStore,
        held: Callable[[], dict[str, Slot]],
        on_resume: Callable[[], None],
    ) -> None:
        self.pauses = pauses
        self.groups = groups
        self.store = store
        self._held = held  # the slots, by task id
        self._on_resume = on_resume  # a resumed group may start its queued tasks

    def _pgid(self, task_id: str) -> int | None:
        slot = self._held().get(task_id)
        if slot is None or slot.attempt is None or not self.pauses.running(task_id):
            return None
        if slot.executor is not None:
            return None  # its pgid is on a worker's host, not here
        pgid = slot.attempt.placement().get("pgid")
        return pgid if isinstance(pgid, int) else None

    def _task(self, task_id: str) -> Task:
        task = self.store.get(task_id)
        if task is None:
            raise errors.NotFound(f"no task with id {task_id!r}", {"id": task_id})
        return task

    def pause(self, task_id: str | None, group: str | None) -> dict[str, Any]:
        if group is not None:
            self.groups.pause(group)
            hit = [t for t in self._in_group(group) if self._pause_one(t)]
            return {"group": group, "paused": True, "tasks": hit}
        assert task_id is not None
        task = self._task(task_id)
        if task.executor is not None and task.state == TaskState.RUNNING:
            raise errors.Conflict(
                f"task {task_id} runs on executor {task.executor}: only local tasks can be "
                "paused (a queued one waits if you pause its group)",
                {"id": task_id, "executor": task.executor},
            )
        if task.state != TaskState.RUNNING or (pgid := self._pgid(task_id)) is None:
            raise errors.Conflict(
                f"task {task_id} is {task.state}; only a running task can be paused "
                "(a queued one waits if you pause its group)",
                {"id": task_id, "state": str(task.state)},
            )
        self.pauses.pause(task_id, pgid)
        return {"id": task_id, "paused": True, "tasks": [task_id]}

    def resume(self, task_id: str | None, group: str | None) -> dict[str, Any]:
        if group is not None:
            self.groups.resume(group)
            hit = [t for t in self._in_group(group) if self.pauses.proceed(t)]
            self._on_resume()
            return {"group": group, "paused": False, "tasks": hit}
        assert task_id is not None
        task = self._task(task_id)
        if not self.pauses.proceed(task_id):
            raise errors.Conflict(
                f"task {task_id} is not paused (it is {task.state})",
                {"id": task_id, "state": str(task.state)},
            )
        return {"id": task_id, "paused": False, "tasks": [task_id]}

    def _pause_one(self, task_id: str) -> bool:
        pgid = self._pgid(task_id)
        return pgid is not None and self.pauses.pause(task_id, pgid)

    def _in_group(self, group: str) -> list[str]:
        out = []
        for task_id in self._held():
            task = self.store.get(task_id)
            if task is not None and task.group == group:
                out.append(task_id)
        return out

    def started(self, task: Task) -> None:
        """An attempt just got its clock: one of a group paused meanwhile stops at once."""
        if self.groups.paused(task.group):
            self._pause_one(task.id)
