"""The executor seam: the supervisor decides when an attempt starts and what its end
means; an executor runs it.

An `Executor` starts one attempt of a task and returns an `Attempt`, recovers what an
earlier daemon run left behind (`recover` per task found running, then one `sweep`
for anything else it started), and takes config changes. An `Attempt` says where it
runs (`placement()`, journalled as the task's `runner` once it has run a moment), can
be asked to stop with a reason, waits for its end and makes sure nothing of it is
left, and shows its output tail. `LocalExecutor` (child processes on this machine) is the
default; a remote one plugs in here without touching the queue, cap or retry logic.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from aiwgd.config import Config
from aiwgd.procs.child import Exit
from aiwgd.tasks.model import Task, TaskState

S = TaskState


class SpawnError(Exception):
    """The attempt could not be started (the message says which program and why)."""


class EndReason(StrEnum):
    """Why the daemon ended an attempt itself (none: it ended on its own)."""

    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"
    LIMIT = "limit"  # over a resource limit (the monitor); `Ending.detail` says which
    BUDGET = "budget"  # over agent.budget; `Ending.detail` is the error
    # A remote attempt whose worker went silent (`Ending.detail` says which): it may
    # still run there, cut off, and is stopped when the worker is heard from again.
    LOST = "lost"
    # The daemon stops but a remote attempt goes on: nothing is recorded, the task
    # stays running on disk and the next start re-attaches to it.
    DETACHED = "detached"


@dataclass(frozen=True)
class Ending:
    """How an attempt ended: its exit, and the reason if the daemon stopped it."""

    exit: Exit
    reason: EndReason | None
    detail: str | None = None  # for LIMIT: e.g. "memory 612 MiB over the limit of 500 MiB"


class Attempt(Protocol):
    """One running attempt of a task, from start until nothing of it is left."""

    def placement(self) -> dict[str, Any]:
        """Where it runs, in the executor's own terms (local: pid, pgid, create_time)."""
        ...

    def stop(self, reason: EndReason) -> None:
        """Ask it to go down the stop ladder; the first reason given wins."""
        ...

    async def wait(self, timeout: float) -> Ending:
        """Wait for its end (exit, a stop request, `timeout`); return once it is gone."""
        ...

    async def abort(self) -> None:
        """Kill it at once and wait until it is gone (after an internal error)."""
        ...

    def output_tail(self) -> str:
        """The last part of its output, safely decoded."""
        ...

    def ask_fresh(self) -> None:
        """Someone shows this running attempt: figures worth a look may be refreshed."""
        ...


class Executor(Protocol):
    name: str

    async def start(self, task: Task, log_path: str, on_output: Callable[[], None]) -> Attempt:
        """Start `task`'s current attempt, its output going to `log_path`.

        Raises SpawnError when it cannot start; nothing is left behind then.
        """
        ...

    async def recover(self, task: Task) -> list[int]:
        """Stop whatever an earlier daemon run left of `task` (found by its `runner`,
        which may be missing: the daemon died right after the spawn); returns what
        was stopped (local: PIDs)."""
        ...

    async def sweep(self) -> dict[str, list[int]]:
        """Stop whatever an earlier daemon run started that is still running, whatever
        its task's state (local: every process marked with this project); returns
        {task id: what was stopped}. Called once at start, after `recover`."""
        ...

    def apply_config(self, config: Config) -> None:
        """Take a new, already validated config (the next stop uses its grace)."""
        ...


def outcome(ending: Ending, timeout: float) -> tuple[TaskState, str | None]:
    """What an attempt's end means: the task's final state for it and the error text."""
    if ending.reason == EndReason.CANCELLED:
        return S.CANCELLED, "cancelled while running"
    if ending.reason == EndReason.SHUTDOWN:
        return S.INTERRUPTED, "interrupted: the daemon stopped while this task was running"
    if ending.reason == EndReason.TIMEOUT:
        return S.TIMED_OUT, f"timed out after {timeout:g}s"
    if ending.reason == EndReason.LIMIT:
        return S.FAILED, f"killed: {ending.detail or 'over a resource limit'}"
    if ending.reason == EndReason.BUDGET:
        return S.FAILED, ending.detail or "budget: over the agent budget"
    if ending.reason == EndReason.LOST:
        return S.INTERRUPTED, f"interrupted: {ending.detail or 'its worker was lost'}"
    if ending.detail and ending.exit == Exit(None, None):
        return S.FAILED, ending.detail  # it never ran: a remote worker refused it, saying why
    if ending.exit.code == 0:
        return S.COMPLETED, None
    return S.FAILED, describe_exit(ending.exit)


def describe_exit(ex: Exit) -> str:
    if ex.signal is not None:
        with contextlib.suppress(ValueError):
            return f"killed by signal {signal.Signals(ex.signal).name} ({ex.signal})"
        return f"killed by signal {ex.signal}"
    return f"exited with code {ex.code}"
