"""Rule executions, their states, and their bounded log (in memory and a JSON-lines file).

One Execution is one rule acting on one event. Its states and the one transition table
(every change goes through `Execution.set_state()`)::

    pending   -> queued | rejected   (approved, or rejected: by a user, a full
                                      approval list, or a rule gone since)
    queued    -> running | failed    (handed to the rule's executor; failed if its
              | skipped              queue is full or a reload removes the rule;
                                     skipped by the rule's overlap policy: a run
                                     is going and it is `skip`, or a newer trigger
                                     took its place in the queue)
    running   -> retrying | succeeded | failed
    retrying  -> running | failed    (the router delivers the event again)

An execution starts pending (the rule requires approval) or queued. succeeded, failed,
rejected and skipped are final. The in-memory log keeps the newest `LOG_SIZE`;
finished executions whose rule still exists are also appended (fsynced) to
`.aiwg/daemon/automation.jsonl`, rotated once past a size cap, and appended again
when the task they started ends (the newest line of an id wins). Each line also
carries its rule's counters then (`rule`). At start `load()` reads the file and its
rotated predecessor back (bounded by the cap), so `automation.log` and the rule
counters go on where they were.
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
from aiwgd.infra.jsonline import tail_lines

log = logging.getLogger("aiwgd.automation")

__all__ = ["FINISHED", "TRANSITIONS", "Execution", "ExecutionLog", "ExecutionState"]

LOG_SIZE = 1000
FILE_MAX_BYTES = 1_048_576
# load() reads at most this much of each file: the live one may pass the cap by a
# line before it rotates; a file grown by hand must not stall the start.
READ_MAX_BYTES = 2 * FILE_MAX_BYTES


class ExecutionState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    SKIPPED = "skipped"


S = ExecutionState
TRANSITIONS: dict[ExecutionState, frozenset[ExecutionState]] = {
    S.PENDING: frozenset({S.QUEUED, S.REJECTED}),
    S.QUEUED: frozenset({S.RUNNING, S.FAILED, S.SKIPPED}),
    S.RUNNING: frozenset({S.RETRYING, S.SUCCEEDED, S.FAILED}),
    S.RETRYING: frozenset({S.RUNNING, S.FAILED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.REJECTED: frozenset(),
    S.SKIPPED: frozenset(),
}
FINISHED = frozenset({S.SUCCEEDED, S.FAILED, S.REJECTED, S.SKIPPED})

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

    @classmethod
    def from_dict(cls, data: Any) -> Execution:
        """Rebuild one from a history line (`to_dict(with_event=True)`); ValueError if damaged."""
        if not isinstance(data, dict):
            raise ValueError("a history line must be an object")
        event = data.get("event")
        if not isinstance(event, dict):
            event = {"id": data.get("event_id"), "type": data.get("event_type")}
        try:
            exe = cls(
                str(data["rule_id"]),
                event,
                ExecutionState(data["state"]),
                str(data["id"]),
                float(data["created_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an execution ({exc!r})") from None
        for name, kinds in _OPTIONAL.items():
            value = data.get(name)
            if isinstance(value, kinds) and not isinstance(value, bool):
                setattr(exe, name, value)
        return exe


# Fields a history line may lack or hold damaged: kept only when of the right type.
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "finished_at": (int, float),
    "attempts": int,
    "action": str,
    "result": dict,
    "task_id": str,
    "task_state": str,
    "error": str,
}


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

    def load(self) -> dict[str, dict[str, Any]]:
        """Read the history files back into memory; the newest `rule` snapshot per rule id.

        A damaged line (a torn last line after a crash, a line edited by hand) is skipped.
        """
        if self.path is None:
            return {}
        latest: dict[str, Execution] = {}
        rules: dict[str, dict[str, Any]] = {}
        for path in (self.path.with_name(self.path.name + ".1"), self.path):
            for line in _tail_lines(path, READ_MAX_BYTES):
                try:
                    data = json.loads(line)
                    exe = Execution.from_dict(data)
                except ValueError:
                    continue
                if exe.state not in FINISHED:
                    continue  # only finished ones are written; anything else was edited
                latest[exe.id] = exe  # an update line replaces the first one
                if isinstance(data.get("rule"), dict):
                    rules[exe.rule_id] = data["rule"]
        # deque(maxlen) keeps the newest; stable sort keeps the file's order for ties.
        self.items.extend(sorted(latest.values(), key=lambda e: e.created_at))
        return rules

    def persist(self, exe: Execution, rule: dict[str, Any] | None = None) -> None:
        """Append an execution (and its rule's snapshot) to the file; errors are logged."""
        if self.path is None:
            return
        try:
            if self._fh is None:
                self._fh = self.path.open("a", encoding="utf-8")
            record = exe.to_dict(with_event=True)
            if rule is not None:
                record["rule"] = rule
            line = json.dumps(record, separators=(",", ":"), default=str)
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


def _tail_lines(path: Path, limit: int) -> list[str]:
    try:
        return [raw.decode("utf-8", "replace") for raw in tail_lines(path, limit)]
    except OSError as exc:
        log.error("cannot read the automation log", extra={"path": str(path), "error": str(exc)})
        return []
