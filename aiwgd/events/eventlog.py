"""The event log: every published event as one JSON line in `.aiwg/daemon/events.jsonl`.

`add()` is called from `publish()`, so it only queues the event; a writer task
serialises and appends queued events in batches from a worker thread (one fsync per
batch), so publishing stays fast and never waits on the disk. A batch gathers for
BATCH_WINDOW_S after its first event: the log is a record, not an acknowledgement
(subscribers get events before they are written), and a busy daemon would otherwise
pay a thread hop and an fsync for every two or three events. The file is rotated by
size (`events.jsonl.1`, `.2`). If the disk cannot keep up, the backlog is bounded and
what is shed is counted.

The router encodes an event's data once, at publish (the history weighs events by it),
and passes that text to `add()`: the writer splices it into the line rather than
encoding the data again (holding the GIL the event loop needs). The line is what
`json_line(event.to_dict())` gives; an event orjson cannot encode (a lone
surrogate anywhere, keys that are not strings) or with no text (its data is not JSON)
goes through json_line itself, as before.

A batch is written whole or not at all: a write the disk takes only part of (a full
disk) is cut back to the last whole line, so the next batch never glues onto half an
event. What could not be written is counted (`lost`, `write_errors`) and the reason is
in status (`last_error`) until a later batch is written again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from aiwgd.infra.durable import write_all
from aiwgd.infra.jsonline import EncodeError, json_line

if TYPE_CHECKING:
    from aiwgd.events.model import Event

log = logging.getLogger("aiwgd.eventlog")

BACKUPS = 2
MAX_BACKLOG = 100_000
BATCH_WINDOW_S = 0.05


class EventLog:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.written = 0
        self.shed = 0
        self.rotations = 0
        self.write_errors = 0  # batches (or single events) that could not be written
        self.lost = 0  # events never written: refused by the disk, or not encodable
        self.last_error: str | None = None  # cleared once a batch is written again
        self._backlog: deque[tuple[Event, bytes | None]] = deque()
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()  # stop() sets it: no more batch windows
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._writer(), name="event-log")

    async def stop(self) -> None:
        """Write what is queued, then end; a batch already in the thread finishes first."""
        if self._task is not None:
            self._closing = True
            self._closed.set()
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            except TimeoutError:
                log.error(
                    "event log writer did not finish in time", extra={"backlog": len(self._backlog)}
                )
                self._task.cancel()
            self._task = None

    def add(self, event: Event, data_json: bytes | None = None) -> None:
        """Queue `event`; `data_json` is its data as history.data_json encoded it."""
        if len(self._backlog) >= MAX_BACKLOG:
            self._backlog.popleft()
            self.shed += 1
            if self.shed == 1 or self.shed % 10_000 == 0:
                log.warning(
                    "event log backlog full; oldest lines not written", extra={"shed": self.shed}
                )
        # Serialised by the writer, off the publish path.
        self._backlog.append((event, data_json))
        self._wake.set()

    def status(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "written": self.written,
            "backlog": len(self._backlog),
            "shed": self.shed,
            "rotations": self.rotations,
            "write_errors": self.write_errors,
            "lost": self.lost,
            "last_error": self.last_error,
        }

    def _drain_backlog(self) -> list[tuple[Event, bytes | None]]:
        lines = list(self._backlog)
        self._backlog.clear()
        return lines

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            if not self._closing:
                # Let the batch fill up; a stop ends the wait at once (it was 50 ms of
                # every `aiwg stop`: the daemon.stopping event had just woken us).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), BATCH_WINDOW_S)
            self._wake.clear()
            events = self._drain_backlog()
            if events:
                await asyncio.to_thread(self._write_batch, events)
            if self._closing and not self._backlog:
                return

    def _write_batch(self, events: list[tuple[Event, bytes | None]]) -> None:
        """Write a batch (in a worker thread); count and report what the disk refused."""
        before = self.written
        try:
            self._write(events)
        except OSError as exc:
            lost = len(events) - (self.written - before)
            self.lost += lost
            self.write_errors += 1
            first = self.last_error is None
            self.last_error = f"cannot write {self.path}: {exc.strerror or exc}"
            if first or self.write_errors % 1000 == 0:  # a full disk fails every batch
                log.error(
                    "cannot write the event log; events not written are counted as lost",
                    extra={"file": str(self.path), "error": str(exc), "lost": self.lost},
                )
            return
        if self.last_error is not None:
            log.warning(
                "the event log is written again",
                extra={"file": str(self.path), "lost": self.lost},
            )
            self.last_error = None

    def _write(self, events: list[tuple[Event, bytes | None]]) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        chunk: list[bytes] = []
        chunk_len = 0
        for e, text in events:
            line = self._encode(e, text)
            if line is None:
                continue
            if size + chunk_len + len(line) > self.max_bytes and size + chunk_len > 0:
                # Fill the file up to its limit, then rotate: no file ends up oversized
                # however large the batch (a single over-long line still gets a file).
                self._append(chunk)
                self._rotate()
                size, chunk, chunk_len = 0, [], 0
            chunk.append(line)
            chunk_len += len(line)
        if chunk:
            self._append(chunk)

    def _encode(self, event: Event, data_json: bytes | None = None) -> bytes | None:
        if data_json is not None:
            with contextlib.suppress(EncodeError):  # json_line's other way, below
                return _line(event, data_json)
        data = event.to_dict()
        try:
            return json_line(data)  # a lone surrogate is escaped, the event kept
        except (ValueError, TypeError, RuntimeError) as exc:  # mutated or not serialisable
            self.write_errors += 1
            self.lost += 1
            log.error(
                "event not written to the event log",
                extra={"event": event.id, "type": event.type, "error": str(exc)},
            )
            return None

    def _append(self, lines: list[bytes]) -> None:
        if not lines:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)  # RDWR: pread
        try:
            start = os.fstat(fd).st_size
            data = b"".join(lines)
            if start and os.pread(fd, 1, start - 1) != b"\n":
                # Half a line left by a crash (or a cut that failed): end it, so this
                # batch's first event is not glued to it (readers skip the broken one).
                data = b"\n" + data
            try:
                write_all(fd, data)
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)  # none of this batch, not half a line
                raise
        finally:
            os.close(fd)
        self.written += len(lines)

    def _rotate(self) -> None:
        for i in range(BACKUPS, 0, -1):
            src = self.path if i == 1 else self.path.with_name(f"{self.path.name}.{i - 1}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i}"))
        self.rotations += 1

    def tail(self, count: int) -> list[Event]:
        """The last `count` events on disk (the current file, then the backups)."""
        from aiwgd.events.model import Event

        lines: list[str] = []
        backups = [self.path.with_name(f"{self.path.name}.{i}") for i in range(1, BACKUPS + 1)]
        for path in (self.path, *backups):
            if len(lines) >= count:
                break
            lines = _last_lines(path, count - len(lines)) + lines
        out = []
        for line in lines[-count:]:
            try:
                out.append(Event.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash is skipped, never fatal
        return out


def _line(event: Event, data_json: bytes) -> bytes:
    """json_line(event.to_dict()), given the data's JSON as orjson wrote it (same keys,
    same order, same encoder). Raises EncodeError where orjson cannot write a field."""
    return b"".join(
        (
            b'{"type":',
            orjson.dumps(event.type),
            b',"data":',
            data_json,
            b',"source":',
            orjson.dumps(event.source),
            b',"id":',
            orjson.dumps(event.id),
            b',"time":',
            orjson.dumps(event.time),
            b"}\n",
        )
    )


def _last_lines(path: Path, count: int, block: int = 65536) -> list[str]:
    """Read backwards just far enough for `count` lines."""
    try:
        fh = path.open("rb")
    except OSError:
        return []
    with fh:
        end = fh.seek(0, os.SEEK_END)
        buf = b""
        pos = end
        while pos > 0 and buf.count(b"\n") <= count:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
    parts = buf.decode("utf-8", errors="replace").splitlines()
    if pos > 0:
        parts = parts[1:]  # the first one may be cut in the middle
    parts = [p for p in parts if p.strip()]
    return parts[-count:] if count else []
