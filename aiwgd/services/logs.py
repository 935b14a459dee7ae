"""A service's output: NAME.log rotated by size on line boundaries, and its last lines.

A service runs for days, so its log is rotated (NAME.log -> NAME.log.1 ... up to
`max_files`) rather than capped like a task's. The log outlives each process of the
instance; `Feed` is the per-process `OutputSink` a `Child` writes to and closes.
Whole lines only go to the file, so a rotation never splits one; a partial line waits
for its end (or for MAX_PARTIAL bytes, or the process's end).
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable

from aiwgd.infra.durable import write_all
from aiwgd.procs.output import OutputSink

log = logging.getLogger("aiwgd.services")

KEEP_LINES = 200
MAX_PARTIAL = 64 * 1024


class RotatingLog:
    """Lines into `path`, rotated at `max_bytes`, `max_files` old files kept."""

    def __init__(self, path: str, max_bytes: int, max_files: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.lines: deque[str] = deque(maxlen=KEEP_LINES)
        self.total_lines = 0
        self.on_line: Callable[[str], None] | None = None
        self._partial = b""
        self._fd: int | None = None
        self._size = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def configure(self, max_bytes: int, max_files: int) -> None:
        self.max_bytes, self.max_files = max_bytes, max_files

    def _open(self) -> int | None:
        if self._fd is None:
            try:
                os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
                self._fd = os.open(self.path, flags, 0o600)
                self._size = os.fstat(self._fd).st_size
            except OSError as exc:
                log.error("cannot open service log", extra={"path": self.path, "error": str(exc)})
                return None
        return self._fd

    def _rotate(self) -> None:
        self.close()
        try:
            for i in range(self.max_files - 1, 0, -1):
                older = f"{self.path}.{i}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
        except OSError as exc:
            log.error("cannot rotate service log", extra={"path": self.path, "error": str(exc)})

    def _write(self, data: bytes) -> None:
        if self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        fd = self._open()
        if fd is None:
            return
        try:
            write_all(fd, data)
            self._size += len(data)
        except OSError as exc:
            # A full disk loses log lines, never the service: keep draining its pipe.
            log.error("cannot write service log", extra={"path": self.path, "error": str(exc)})

    def _line(self, raw: bytes) -> None:
        self._write(raw)
        text = self._decoder.decode(raw).rstrip("\n")
        self.lines.append(text)
        self.total_lines += 1
        if self.on_line is not None:
            self.on_line(text)

    def feed(self, data: bytes) -> None:
        buf = self._partial + data
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            self._line(buf[start : end + 1])
            start = end + 1
        self._partial = buf[start:]
        if len(self._partial) > MAX_PARTIAL:
            self.flush()

    def flush(self) -> None:
        """A partial line is written as a line of its own (the process ended)."""
        if self._partial:
            raw, self._partial = self._partial + b"\n", b""
            self._line(raw)

    def note(self, text: str) -> None:
        """A line of our own (starts, exits), marked so nobody takes it for output."""
        self.flush()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._line(f"[aiwgd {stamp}] {text}\n".encode())

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def tail(self, n: int) -> list[str]:
        return list(self.lines)[-n:] if n > 0 else []


class Feed(OutputSink):
    """The sink one process of a service writes to: into the service's RotatingLog.

    `Child` closes its sink when the process ends; the log stays open for the next one.
    """

    def __init__(self, target: RotatingLog) -> None:
        super().__init__(None, tail_bytes=0)
        self.target = target

    def feed(self, data: bytes) -> None:
        if data:
            self.target.feed(data)

    def write_note(self, text: str) -> None:
        self.target.note(text.rstrip("\n"))

    def close(self) -> None:
        self.target.flush()

    def tail(self) -> str:
        return "\n".join(self.target.tail(20))
