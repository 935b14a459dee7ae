"""The kill log: `.aiwg/daemon/kills.jsonl`, one JSON line for each process the daemon
killed on its own initiative (the hung-process watchdog, resource limits), and why.

Each record is an fsynced append (a kill is rare and must survive a crash that follows
it); the file is owner-only and rotated to `kills.jsonl.1` once past `max_bytes`, so it
stays bounded without ever rewriting lines. Both the watchdog's scan thread and the loop
may append, through one KillLog or several: a lock per file keeps a line and a
rotation from interleaving. Standard library only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from aiwgd.infra.durable import write_all
from aiwgd.infra.jsonline import json_line, tail_lines

__all__ = ["MAX_BYTES", "KillLog"]

log = logging.getLogger("aiwgd.kills")

MAX_BYTES = 1_048_576
# read() looks at most this far back in each file: a file grown by hand (or a rotation
# that failed) must not make `watchdog.kills` read megabytes.
_READ_MAX_BYTES = 2 * MAX_BYTES


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    """One lock per file, however many KillLog objects name it (the watchdog and the
    monitor each hold one): a rotation must never race another writer's append."""
    key = path.absolute()
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


class KillLog:
    def __init__(self, path: Path, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = _lock_for(path)

    @property
    def rotated(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    def append(self, record: dict[str, Any]) -> None:
        """Write `record` as one fsynced line (with `time`, epoch seconds, if absent).

        Raises OSError when the disk refuses it: the caller decides whether a kill that
        was not logged is worth more than a log line about it.
        """
        if "time" not in record:
            record = {"time": time.time(), **record}
        line = json_line(record)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                write_all(fd, line)
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > self.max_bytes:
                # A rename keeps every line whole; the previous .1 is what is given up.
                os.replace(self.path, self.rotated)

    def read(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` records, oldest first (newest last).

        A line that is not a JSON object (a torn last line after a crash, an edit by
        hand) is skipped; a missing file is an empty log.
        """
        if limit <= 0:
            return []
        records: list[dict[str, Any]] = []
        with self._lock:
            for path in (self.rotated, self.path):
                for raw in _tail_lines(path, _READ_MAX_BYTES):
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(data, dict):
                        records.append(data)
        return records[-limit:]


def _tail_lines(path: Path, limit: int) -> list[bytes]:
    try:
        return tail_lines(path, limit)
    except OSError as exc:
        log.error("cannot read the kill log", extra={"path": str(path), "error": str(exc)})
        return []
