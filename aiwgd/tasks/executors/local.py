"""One attempt of a task as a process, from spawn to a named outcome (for aiwgd.supervisor).

`spawn()` starts the child with the argv, environment and log file the task and the
config call for. `Run` is the attempt while it holds a supervisor slot: `wait_end()`
waits for whichever comes first (the child's exit, a stop request, the timeout), takes
the child down the stop ladder when it must, and `outcome()` names the final state.
The supervisor decides what happens next (record, retry, requeue); nothing here
touches the store or the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiwgd.config import Config
from aiwgd.procs.child import Child, Exit
from aiwgd.tasks.model import Task, TaskState
from aiwgd.tasks.spec import child_env, task_argv

S = TaskState


class SpawnError(Exception):
    """The task's program could not be started (the message says which and why)."""


async def spawn(
    cfg: Config, root: Path, task: Task, log_path: Path, on_data: Callable[[], None]
) -> Child:
    """Start the task's process in its own session, output going to `log_path`."""
    argv = task_argv(cfg, task)
    env = child_env(cfg, task.env)
    env.update(AIWG_TASK_ID=task.id, AIWG_ROOT=str(root))
    header = f"[aiwgd] attempt {task.attempt} of task {task.id}\n" if task.attempt > 1 else None
    try:
        return await Child.spawn(
            argv, cwd=task.cwd or str(root), env=env, log_path=log_path,
            log_cap=cfg.tasks.log_max_bytes, tail_bytes=cfg.tasks.output_tail_bytes,
            header=header, on_data=on_data,
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        raise SpawnError(f"cannot start {argv[0]!r}: {exc}") from exc


def running_fields(task: Task, child: Child, log_path: Path) -> dict[str, Any]:
    """What the running-state journal line records: only what changed."""
    fields: dict[str, Any] = {"pid": child.pid, "pgid": child.pgid,
                              "proc_create_time": child.create_time}  # fmt: skip
    if task.log_path is None:
        fields["log_path"] = str(log_path)
    # A retry clears what the previous attempt left (only then: smaller journal lines).
    for name in ("exit_code", "signal", "error", "retry_at", "finished_at"):
        if getattr(task, name) is not None:
            fields[name] = None
    return fields


@dataclass
class Run:
    """A task holding a slot: from spawn until its processes are really gone."""

    task_id: str
    child: Child | None = None
    reason: str | None = None  # why we stop it: cancelled | timeout | shutdown
    wake: asyncio.Future[None] | None = None  # resolved to end the wait on the child
    job: asyncio.Task[None] | None = None

    def stop(self, reason: str) -> None:
        """Ask the run to go down the ladder (the first reason given wins)."""
        self.reason = self.reason or reason
        if self.wake is not None:
            _settle(self.wake)

    async def wait_end(
        self, child: Child, timeout: float, grace: Callable[[], float], fast_stop: asyncio.Event
    ) -> Exit:
        """Wait for exit, a stop request or the timeout; then make sure the child is gone."""
        # One future woken by whichever comes first: exit, a stop request, the timeout.
        loop = asyncio.get_running_loop()
        wake = self.wake = loop.create_future()
        child.exited().add_done_callback(lambda _f: _settle(wake))
        if self.reason is not None:
            _settle(wake)  # cancelled while it was being spawned
        timer = loop.call_later(timeout, _settle, wake)
        try:
            await wake
        finally:
            timer.cancel()
        if not child.exited().done() or self.reason is not None:
            self.reason = self.reason or "timeout"
            # The grace period is read now, so a reload applies to the next stop.
            await child.terminate(grace(), fast_stop)
        return await child.finish(grace(), fast_stop)

    def outcome(self, ex: Exit, timeout: float) -> tuple[TaskState, str | None]:
        """The final state of this attempt and its error text."""
        if self.reason == "cancelled":
            return S.CANCELLED, "cancelled while running"
        if self.reason == "shutdown":
            return S.INTERRUPTED, "interrupted: the daemon stopped while this task was running"
        if self.reason == "timeout":
            return S.TIMED_OUT, f"timed out after {timeout:g}s"
        if ex.code == 0:
            return S.COMPLETED, None
        return S.FAILED, describe_exit(ex)


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def describe_exit(ex: Exit) -> str:
    if ex.signal is not None:
        with contextlib.suppress(ValueError):
            return f"killed by signal {signal.Signals(ex.signal).name} ({ex.signal})"
        return f"killed by signal {ex.signal}"
    return f"exited with code {ex.code}"
