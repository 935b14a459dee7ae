"""Rule executions, their states, and their bounded log (in memory and a JSON-lines file).

One Execution is one rule acting on one event. Its states and the one transition table
(every change goes through `Execution.set_state()`)::

    pending   -> queued | rejected   (approved, or rejected: by a user, a full
                                      approval list, or a rule gone since)
    queued    -> running | failed    (handed to the rule's executor; failed if its
                                      queue is full or a reload removes the rule)
    running   -> retrying | succeeded | failed
    retrying  -> running | failed    (the router delivers the event again)

An execution starts pending (the rule requires approval) or queued. succeeded, failed
and rejected are final. The in-memory log keeps the newest `LOG_SIZE`; finished
executions whose rule still exists are also appended (fsynced) to
`.aiwg/daemon/automation.jsonl`, rotated once past a size cap, so their history
survives a restart for humans reading the file (the `automation.log` method reads
only the in-memory log).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from aiwgd.infra.durable import append_line

log = logging.getLogger("aiwgd.automation")

__all__ = ["FINISHED", "TRANSITIONS", "Execution", "ExecutionLog", "ExecutionState"]

LOG_SIZE = 1000
FILE_MAX_BYTES = 1_048_576


class ExecutionState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"


S = ExecutionState
TRANSITIONS: dict[ExecutionState, frozenset[ExecutionState]] = {
    S.PENDING: frozenset({S.QUEUED, S.REJECTED}),
    S.QUEUED: frozenset({S.RUNNING, S.FAILED}),
    S.RUNNING: frozenset({S.RETRYING, S.SUCCEEDED, S.FAILED}),
    S.RETRYING: frozenset({S.RUNNING, S.FAILED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.REJECTED: frozenset(),
}
FINISHED = frozenset({S.SUCCEEDED, S.FAILED, S.REJECTED})

_seq = itertools.count(1)
_PREFIX = f"{int(time.time()):x}-{os.getpid():x}"  # unique across restarts


def _new_id() -> str:
    return f"ex-{_PREFIX}-{next(_seq)}"


@dataclass
class Execution:
    rule_id: str
    event: dict[str, Any]
    state: ExecutionState = S.QUEUED
    id: str = field(default_factory=_new_id)
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    attempts: int = 0
    action: str = ""
    result: dict[str, Any] | None = None
    task_id: str | None = None
    task_state: str | None = None
    error: str | None = None

    def set_state(self, new: ExecutionState, error: str | None = None) -> None:
        """Move to `new` if the table allows it, else raise ValueError.

        `error` is recorded on retrying and final states (None clears an earlier one);
        a final state also records the time it finished.
        """
        if new not in TRANSITIONS[self.state]:
            allowed = ", ".join(sorted(TRANSITIONS[self.state])) or "none: it is final"
            raise ValueError(
                f"execution {self.id} is {self.state}; it cannot become {new} (allowed: {allowed})"
            )
        self.state = new
        if new is S.RETRYING or new in FINISHED:
            self.error = error
        if new in FINISHED:
            self.finished_at = time.time()

    def to_dict(self, with_event: bool = False) -> dict[str, Any]:
        out = asdict(self)
        ev = out.pop("event")
        out["event_id"] = ev.get("id")
        out["event_type"] = ev.get("type")
        if with_event:
            out["event"] = ev
        return out


class ExecutionLog:
    """The newest executions in memory; persisted ones appended to a rotated file."""

    def __init__(self, path: Path | None, size: int = LOG_SIZE) -> None:
        self.items: deque[Execution] = deque(maxlen=size)
        self.path = path
        self._fh: TextIO | None = None

    def add(self, exe: Execution) -> None:
        self.items.append(exe)

    def newest(self, rule_id: str | None = None, limit: int = 50) -> Iterator[Execution]:
        n = 0
        for exe in reversed(self.items):
            if rule_id is None or exe.rule_id == rule_id:
                yield exe
                n += 1
                if n >= limit:
                    return

    def persist(self, exe: Execution) -> None:
        """Append a finished execution to the file; a disk error is logged, not raised."""
        if self.path is None:
            return
        try:
            if self._fh is None:
                self._fh = self.path.open("a", encoding="utf-8")
            line = json.dumps(exe.to_dict(with_event=True), separators=(",", ":"), default=str)
            append_line(self._fh, line)
            if self._fh.tell() > FILE_MAX_BYTES:
                self._rotate()
        except OSError as exc:
            log.error("cannot write the automation log", extra={"error": str(exc)})

    def _rotate(self) -> None:
        assert self.path is not None
        self.close()
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
