"""Rule executions and their bounded log (in memory, mirrored to a JSON-lines file).

One Execution is one rule acting on one event: pending (waiting for approval),
running, retrying (the router will deliver the event again), succeeded, failed or
rejected. The in-memory log keeps the newest `LOG_SIZE`; finished executions are also
appended (fsynced) to `.aiwg/daemon/automation.jsonl`, rotated once past a size cap,
so `automation.log` history survives a restart for humans reading the file.
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
from pathlib import Path
from typing import Any, TextIO

from aiwgd.infra.durable import append_line

log = logging.getLogger("aiwgd.automation")

__all__ = ["FINISHED", "Execution", "ExecutionLog"]

LOG_SIZE = 1000
FILE_MAX_BYTES = 1_048_576
FINISHED = frozenset({"succeeded", "failed", "rejected"})

_seq = itertools.count(1)
_PREFIX = f"{int(time.time()):x}-{os.getpid():x}"  # unique across restarts


def _new_id() -> str:
    return f"ex-{_PREFIX}-{next(_seq)}"


@dataclass
class Execution:
    rule_id: str
    event: dict[str, Any]
    state: str = "running"
    id: str = field(default_factory=_new_id)
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    attempts: int = 0
    action: str = ""
    result: dict[str, Any] | None = None
    task_id: str | None = None
    task_state: str | None = None
    error: str | None = None

    def finish(self, state: str, error: str | None = None) -> None:
        self.state = state
        self.error = error
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
    """The newest executions in memory; finished ones appended to a rotated file."""

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
