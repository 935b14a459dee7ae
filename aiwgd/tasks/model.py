"""The task model: states, the one transition table, the Task record and task ids.

A task is an agent prompt (`prompt`) or a command (`command`, an argv list run without a
shell). Its life is a small state machine; every change of state goes through
`check_transition()`, so no other module decides what may follow what.

States and the transition table (ARCHITECTURE.md, "Task states")::

    queued      -> running | cancelled | dependency_failed (an `after` task did not complete)
    running     -> completed | failed | timed_out | cancelled | interrupted
                   | queued        (a retry only: `attempt` must grow by one)
    interrupted -> queued | failed (per the task's `on_interrupt`, see TaskStore.recover)

Terminal states (completed, failed, timed_out, cancelled) never change again. A retry
(`max_retries`) is therefore decided when an attempt ends, *before* the task would
become terminal: the supervisor moves it running -> queued with `attempt + 1` and a
`retry_at` wall time for the backoff, keeping the last attempt's `exit_code`, `signal`
and `error`. Only when no retry is left does it become failed / timed_out, for good.

A task's `env` values are secrets as far as the store is concerned: they live only in
the Task objects in memory (so the child gets them), while `to_dict()`, which every
record, journal line and RPC result is made from, shows each value as ENV_REDACTED.
A task read back from disk therefore holds ENV_REDACTED values (`lost_env()`).

Priorities are integers, higher runs first; the names map to: low=-10, normal=0,
high=10, critical=20 (`parse_priority`).

Ids (`new_task_id`) are short, sortable by creation and never reused, even if the store
was damaged: a millisecond clock that never goes backwards within a process and is
floored above every id ever loaded, in base 36, plus two random characters against a
wall clock set back between runs.
"""

from __future__ import annotations

import operator
import os
import random
import sys
import time
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from aiwgd.errors import Conflict

__all__ = [
    "ENV_REDACTED",
    "EVENT_FOR_STATE",
    "ON_INTERRUPT",
    "PRIORITIES",
    "SOURCES",
    "TERMINAL",
    "TERMINAL_EVENTS",
    "TRANSITIONS",
    "IdGenerator",
    "InvalidTransition",
    "Task",
    "TaskState",
    "check_transition",
    "parse_priority",
]


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    DEPENDENCY_FAILED = "dependency_failed"  # an `after` task did not complete; never ran


S = TaskState
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED, S.DEPENDENCY_FAILED}),
    S.RUNNING: frozenset(
        {S.COMPLETED, S.FAILED, S.TIMED_OUT, S.CANCELLED, S.INTERRUPTED, S.QUEUED}
    ),
    S.INTERRUPTED: frozenset({S.QUEUED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.TIMED_OUT: frozenset(),
    S.CANCELLED: frozenset(),
    S.DEPENDENCY_FAILED: frozenset(),
}
TERMINAL: frozenset[TaskState] = frozenset(
    {S.COMPLETED, S.FAILED, S.TIMED_OUT, S.CANCELLED, S.DEPENDENCY_FAILED}
)

# The event published when a task enters a state (ARCHITECTURE.md, "Events").
EVENT_FOR_STATE: dict[TaskState, str] = {
    S.QUEUED: "task.queued",
    S.RUNNING: "task.started",
    S.COMPLETED: "task.completed",
    S.FAILED: "task.failed",
    S.TIMED_OUT: "task.timed_out",
    S.CANCELLED: "task.cancelled",
    S.INTERRUPTED: "task.interrupted",
    S.DEPENDENCY_FAILED: "task.dependency_failed",
}
# The events that end a task for good: what anyone following a started task waits for.
TERMINAL_EVENTS: tuple[str, ...] = tuple(e for s, e in EVENT_FOR_STATE.items() if s in TERMINAL)

SOURCES = ("cli", "rpc", "rule", "schedule", "chat")
# What an attempt cut short by a daemon stop or crash leads to (as a retry, or failed).
ON_INTERRUPT = ("requeue", "fail")
# What a stored record, a journal line or an RPC result shows for a task's env value.
ENV_REDACTED = "<redacted>"
PRIORITIES: dict[str, int] = {"low": -10, "normal": 0, "high": 10, "critical": 20}


class InvalidTransition(Conflict):
    """A state change the table forbids (e.g. cancelling a completed task).

    A Conflict, so over RPC it answers with the stable "conflict" code -32002.
    """

    def __init__(self, task_id: str, old: str, new: str, why: str = "") -> None:
        allowed = ", ".join(sorted(TRANSITIONS.get(TaskState(old), ()))) or "none: it is final"
        msg = why or f"task {task_id} is {old}; it cannot become {new} (allowed: {allowed})"
        super().__init__(msg, {"id": task_id, "state": old, "requested": new})
        self.task_id = task_id
        self.old = old
        self.new = new


def check_transition(task_id: str, old: TaskState | str, new: TaskState | str) -> None:
    """Raise InvalidTransition unless the table allows old -> new."""
    old_s, new_s = TaskState(old), TaskState(new)
    if new_s not in TRANSITIONS[old_s]:
        raise InvalidTransition(task_id, old_s, new_s)


def parse_priority(value: int | str) -> int:
    """An integer, a numeric string, or one of low|normal|high|critical; else ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a priority")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        name = value.strip().lower()
        if name in PRIORITIES:
            return PRIORITIES[name]
        try:
            return int(name)
        except ValueError:
            pass
    names = "|".join(PRIORITIES)
    raise ValueError(f"{value!r} is not a priority (an integer or one of {names})")


@dataclass(slots=True)
class Task:
    """One task as stored. Times are wall-clock seconds (for people), never for delays."""

    id: str
    state: TaskState = TaskState.QUEUED
    prompt: str | None = None
    command: list[str] | None = None
    agent: str | None = None
    priority: int = 0
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    max_retries: int = 0
    # requeue | fail, decided at submit; None in records older than the field.
    on_interrupt: str | None = None
    source: str = "rpc"
    metadata: dict[str, Any] = field(default_factory=dict)
    # Its own resource limits (config/limits.py Limits as a dict); None: agent.limits
    # for a prompt, none for a command. Stored, so a retry or a requeue keeps them.
    limits: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    # Where the current attempt runs, in its executor's terms (local: pid, pgid and
    # create_time, which tells a reused PID apart); None once it ended.
    runner: dict[str, Any] | None = None
    exit_code: int | None = None
    signal: int | None = None
    error: str | None = None
    attempt: int = 1  # the attempt running or about to run; a retry adds one
    retry_at: float | None = None  # wall time before which a retry must not start
    output_tail: str = ""
    log_path: str | None = None
    # What an agent with agent.output "stream-json" said (aiwgd.agents.streamjson):
    # its session (recorded as soon as it is seen), answer, token counts (`tokens`:
    # not `usage`, which task.get uses for a running task's resource use), cost in
    # USD (the result's total, else the running estimate) and turns.
    session_id: str | None = None
    result: str | None = None
    tokens: dict[str, int] | None = None
    cost_usd: float | None = None
    turns: int | None = None
    # Why a queued task does not start although a slot is free (the daily agent budget).
    queued_reason: str | None = None
    # isolate: "worktree" runs it in a git worktree made from `base` (None: HEAD) at its
    # first attempt; `worktree` is that worktree (Worktree.to_dict), or the resumed
    # task's. `resume`: the task whose agent session (`resume_session`) it continues.
    isolate: str | None = None
    base: str | None = None
    worktree: dict[str, Any] | None = None
    resume: str | None = None
    resume_session: str | None = None
    # Queue control (aiwgd.tasks.gates): a name for people, the tasks that must complete
    # first, the wall time before which it must not start, its group, and the task it
    # re-runs (task.rerun).
    name: str | None = None
    after: list[str] | None = None
    start_at: float | None = None
    group: str | None = None
    rerun_of: str | None = None
    # Where its attempts run: None for the daemon itself ("local"), else the name of a
    # config `executors` entry (aiwgd.remote), decided at submit.
    executor: str | None = None

    def previous_attempt_fields(self) -> dict[str, Any]:
        """What a new attempt's running record clears: only what an earlier attempt left
        (a retry; otherwise nothing, for smaller journal lines)."""
        names = ("exit_code", "signal", "error", "retry_at", "finished_at", "queued_reason")
        return {name: None for name in names if getattr(self, name) is not None}

    @property
    def retries_left(self) -> int:
        """Attempts still allowed after the current one (max_retries counts re-runs)."""
        return self.max_retries - (self.attempt - 1)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def evolve(self, **changes: Any) -> Task:
        """A copy with `changes` (dataclasses.replace, at a third of its cost: the store
        makes three a task, issue 9). An unknown field is a TypeError, as there."""
        values = list(_GET_ALL(self))
        for name, value in changes.items():
            try:
                values[_INDEX[name]] = value
            except KeyError:
                raise TypeError(f"Task has no field {name!r}") from None
        return Task(*values)

    def to_dict(self) -> dict[str, Any]:
        """The record as stored and shown: env values hidden (see the module doc)."""
        out = {name: getattr(self, name) for name in _FIELD_NAMES}
        out["state"] = str(self.state)
        if self.env:
            out["env"] = dict.fromkeys(self.env, ENV_REDACTED)
        return out

    def lost_env(self) -> list[str]:
        """Names whose values this task no longer has (it was read back from disk)."""
        return [name for name, value in self.env.items() if value == ENV_REDACTED]

    def summary(self) -> dict[str, Any]:
        """The record without its output (for task.list)."""
        out = self.to_dict()
        del out["output_tail"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        """Build from a stored record; unknown keys (a newer version's) are ignored.

        Start-up builds every stored task through here, so it avoids needless copies.
        """
        if not _FIELD_SET.issuperset(data):
            data = upgrade_fields(data)
            data = {k: v for k, v in data.items() if k in _FIELD_SET}
        task = cls(**data)
        try:
            task.state = _STATES[task.state]
        except (KeyError, TypeError):
            raise ValueError(f"{task.state!r} is not a task state") from None
        # Values repeated across thousands of tasks share one string object.
        for name in ("source", "agent", "cwd", "on_interrupt", "executor"):
            value = getattr(task, name)
            if type(value) is str:
                setattr(task, name, sys.intern(value))
        return task


# Before the executor seam, a task kept its process facts in fields of its own.
_LEGACY_RUNNER = {"pid": "pid", "pgid": "pgid", "proc_create_time": "create_time"}


def upgrade_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Stored fields of an older version in today's names (a record or a journal change)."""
    if not _LEGACY_RUNNER.keys() & data.keys():
        return data
    data = dict(data)
    runner = {new: data.pop(old) for old, new in _LEGACY_RUNNER.items() if old in data}
    data["runner"] = runner if any(v is not None for v in runner.values()) else None
    return data


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Task))
_FIELD_SET = frozenset(_FIELD_NAMES)
# Every field's value in declaration order, which is also Task()'s positional order.
_GET_ALL = operator.attrgetter(*_FIELD_NAMES)
_INDEX = {name: i for i, name in enumerate(_FIELD_NAMES)}
_STATES: dict[str, TaskState] = {str(s): s for s in TaskState}
FIELD_NAMES = _FIELD_NAMES

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# The suffix only keeps ids apart after a clock set back with the store lost: it need
# not be secret, so one seed from the OS, not a getrandom syscall per character.
_SUFFIXES = random.Random(os.urandom(16))


def _base36(n: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(reversed(out)) or "0"


def _unbase36(text: str) -> int | None:
    try:
        return int(text, 36)
    except ValueError:
        return None


class IdGenerator:
    """Task ids: base36 of a strictly increasing millisecond counter + 2 random chars.

    The counter is max(last + 1, now in ms), floored by `observe()` above every id the
    store has seen, so ids sort by creation and never repeat within a store's history;
    the random suffix covers a clock set back while the store was lost.
    """

    SUFFIX = 2

    def __init__(self) -> None:
        self.last = 0

    def observe(self, task_id: str) -> None:
        """Raise the floor above an existing id (called for every id loaded)."""
        n = _unbase36(task_id[: -self.SUFFIX]) if len(task_id) > self.SUFFIX else None
        if n is not None and n > self.last:
            self.last = n

    def new(self) -> str:
        self.last = max(self.last + 1, int(time.time() * 1000))
        suffix = "".join(_SUFFIXES.choice(_ALPHABET) for _ in range(self.SUFFIX))
        return _base36(self.last) + suffix
