"""A service's output: NAME.log rotated by size on line boundaries, and its last lines.

A service runs for days, so its log is rotated (NAME.log -> NAME.log.1 ... up to
`max_files`) rather than capped like a task's. The log outlives each process of the
instance; `Feed` is the per-process `OutputSink` a `Child` writes to and closes.
Whole lines only go to the file, so a rotation never splits one; a partial line waits
for its end (or for MAX_PARTIAL bytes, or the process's end).

`LineFollow` is one `service.logs` follow: every line a log takes is handed to its
followers as it is cut, so a follower sees each line exactly once and in order (no
polling of the in-memory tail, which keeps only KEEP_LINES).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

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
        self.followers: set[Follower] = set()
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
        self._close_fd()
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
        for follower in tuple(self.followers):
            follower.line(self, text)

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
        """The instance is gone (a reload removed or replaced it, or the daemon stops):
        its followers are told, as no line will come here again."""
        self._close_fd()
        followers, self.followers = tuple(self.followers), set()
        for follower in followers:
            follower.ended(self)

    def _close_fd(self) -> None:
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


class Follower(Protocol):
    """What a RotatingLog tells those following it (called in the loop, must not block)."""

    def line(self, source: RotatingLog, text: str) -> None: ...

    def ended(self, source: RotatingLog) -> None: ...


Notify = Callable[[str, dict[str, Any]], Awaitable[None]]

# A follower's queue, in lines: what a client that reads too slowly may cost in memory.
MAX_QUEUED = 10_000
# One notification carries at most this many lines, or about this many characters, so a
# burst goes out as several medium messages rather than one huge one.
BATCH_LINES = 1000
BATCH_CHARS = 256 * 1024


class _Gap:
    """Where lines were dropped, in the queue between the lines around them."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count


class LineFollow:
    """One follow of some instances' logs, sent as notifications by one task, in order.

    `notify` is the connection's (it waits while the client's buffer is full): lines
    that arrive meanwhile queue up to MAX_QUEUED; what does not fit is counted and told
    as one `service.output_dropped` at the place of the gap, never dropped silently.
    When every followed log has ended, `service.output_ended` is sent and `on_end` runs.
    """

    def __init__(self, sid: str, name: str, notify: Notify, on_end: Callable[[], None]) -> None:
        self.sid = sid
        self.name = name
        self._notify = notify
        self._on_end = on_end
        self._names: dict[RotatingLog, str] = {}
        self._queue: deque[tuple[str, str] | _Gap] = deque()
        self._gap = 0
        self.dropped = 0
        self._wake: asyncio.Event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def watch(self, logs: dict[str, RotatingLog]) -> None:
        """Start following `logs` (instance name -> its log)."""
        for instance, target in logs.items():
            self._names[target] = instance
            target.followers.add(self)
        self._task = asyncio.get_running_loop().create_task(self._send())
        if not self._names:  # `all` with no service: nothing will ever come
            self._wake.set()

    def stop(self) -> None:
        """Stop at once (the connection closed): nothing more is sent."""
        for target in self._names:
            target.followers.discard(self)
        self._names.clear()
        if self._task is not None:
            self._task.cancel()

    # ---- Follower ----------------------------------------------------------------------
    def line(self, source: RotatingLog, text: str) -> None:
        if len(self._queue) >= MAX_QUEUED:
            self._gap += 1
            self.dropped += 1
            return
        self._close_gap()
        self._queue.append((self._names[source], text))
        self._wake.set()

    def ended(self, source: RotatingLog) -> None:
        self._names.pop(source, None)
        if not self._names:
            self._wake.set()

    # ---- inside ------------------------------------------------------------------------
    def _close_gap(self) -> None:
        if self._gap:
            self._queue.append(_Gap(self._gap))
            self._gap = 0

    async def _send(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue or self._gap:
                self._close_gap()
                item = self._queue.popleft()
                if isinstance(item, _Gap):
                    await self._notify("service.output_dropped", self._dropped(item.count))
                    continue
                instance, lines = item[0], [item[1]]
                size = len(item[1])
                while self._queue and len(lines) < BATCH_LINES and size < BATCH_CHARS:
                    nxt = self._queue[0]
                    if isinstance(nxt, _Gap) or nxt[0] != instance:
                        break
                    self._queue.popleft()
                    lines.append(nxt[1])
                    size += len(nxt[1])
                params = {"name": self.name, "instance": instance, "lines": lines}
                await self._notify("service.output", params)
            if not self._names:
                reason = "removed or replaced by a reload, or the daemon is stopping"
                await self._notify(
                    "service.output_ended",
                    {"name": self.name, "subscription_id": self.sid, "reason": reason},
                )
                self._on_end()
                return

    def _dropped(self, count: int) -> dict[str, Any]:
        return {
            "name": self.name,
            "subscription_id": self.sid,
            "dropped": count,
            "message": f"{count} lines were dropped: this connection read too slowly",
        }
