"""A remote attempt's output and its records, written to Redis in order and never
blocking the child.

The horse's child writes into a pipe that `aiwgd.procs.child` drains into a sink; here
the sink (`StreamSink`) hands each chunk to a `StreamWriter`, which appends it to the
execution's `out` stream (aiwgd.remote.keys) from its own task, in batches. Redis may
be away for a while (a restart, a network cut): the writer keeps what it has, in
order, up to a bound, and retries with a backoff; output past the bound is dropped
and the stream says how much, where it happened. The other records (the run hash and
the "start" entry, the "end" entry with its publish) go through the same queue, so an
end never overtakes the output before it.

A write that the server applied but whose answer was lost (the connection broke just
then) is retried, so an entry may come twice in that case; nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aredis
from redis.exceptions import RedisError

from aiwgd.procs.output import OutputSink
from aiwgd.remote import keys

log = logging.getLogger("aiwgd.remote")

ENTRY_BYTES = 64 * 1024  # output coalesced into one stream entry at most
BATCH = 64  # records per round trip
MAX_BUFFER = 8 * 1024 * 1024  # output held while Redis is away; more is dropped
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.05, 2.0
WRITER = "[aiwg worker]"


@dataclass
class _Record:
    kind: str  # out | dropped | start | end
    data: bytearray = field(default_factory=bytearray)  # out: the bytes
    fields: dict[str, Any] = field(default_factory=dict)  # start/end: the entry
    count: int = 0  # dropped: bytes lost
    sealed: bool = False  # part of a write in flight: no more bytes join it


def note(text: str) -> bytes:
    """A line of the worker's own in the attempt's output."""
    return f"{WRITER} {text}\n".encode()


def end_fields(code: int | None, signal: int | None, reason: str | None) -> dict[str, Any]:
    return {
        "k": "end",
        "code": "" if code is None else code,
        "signal": "" if signal is None else signal,
        "reason": reason or "",
    }


class StreamWriter:
    """Records of one execution into Redis, in order, retried until written."""

    def __init__(
        self, client: aredis.Redis, queue: str, execution: str, max_buffer: int = MAX_BUFFER
    ) -> None:
        self.client = client
        self.queue = queue
        self.execution = execution
        self.max_buffer = max_buffer
        self._records: deque[_Record] = deque()
        self._buffered = 0
        self._dropping: _Record | None = None
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._away = False
        self._task: asyncio.Task[None] | None = None

    def key(self, kind: str) -> str:
        return keys.key(self.queue, kind, self.execution)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    # -- adding (synchronous: called from the child's pipe reader) -------------------
    def output(self, data: bytes) -> None:
        if not data:
            return
        if self._buffered + len(data) > self.max_buffer:
            if self._dropping is None or self._dropping.sealed:
                self._dropping = _Record("dropped")
                self._add(self._dropping)
            self._dropping.count += len(data)
            return
        self._dropping = None
        self._buffered += len(data)
        last = self._records[-1] if self._records else None
        fits = last is not None and len(last.data) + len(data) <= ENTRY_BYTES
        if last is not None and fits and last.kind == "out" and not last.sealed:
            last.data += data
            return
        self._add(_Record("out", bytearray(data)))

    def entry(self, kind: str, fields: Mapping[str, Any]) -> None:
        """A "start" (the run hash is written with it) or "end" record."""
        self._add(_Record(kind, fields=dict(fields)))

    def _add(self, record: _Record) -> None:
        self._records.append(record)
        self._empty.clear()
        self._wake.set()

    async def drain(self) -> None:
        """Return once everything added so far is in Redis (however long that takes)."""
        await self._empty.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- writing -----------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            if not self._records:
                self._empty.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._records[i] for i in range(min(BATCH, len(self._records)))]
            for record in batch:
                record.sealed = True
            try:
                await self._write(batch)
            except (RedisError, OSError) as exc:
                if not self._away:
                    self._away = True
                    log.warning(
                        "cannot write to Redis; output is held and retried",
                        extra={"execution": self.execution, "error": str(exc)},
                    )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            if self._away:
                self._away = False
                log.info("writing to Redis again", extra={"execution": self.execution})
            backoff = BACKOFF_MIN_S
            for record in batch:
                self._records.popleft()
                if record.kind == "out":
                    self._buffered -= len(record.data)
                elif record is self._dropping:
                    self._dropping = None  # later drops get a note of their own

    async def _write(self, batch: list[_Record]) -> None:
        out = self.key("out")
        async with self.client.pipeline(transaction=True) as pipe:
            for record in batch:
                if record.kind == "out":
                    fields: dict[Any, Any] = {"k": "out", "d": bytes(record.data)}
                elif record.kind == "dropped":
                    text = f"{record.count} bytes of output were dropped while Redis was away"
                    fields = {"k": "out", "d": note(text)}
                else:
                    fields = record.fields
                if record.kind == "start":
                    run = {k: v for k, v in fields.items() if k != "k"}
                    pipe.hset(self.key("run"), mapping=run)
                    pipe.expire(self.key("run"), keys.KEEP_S)
                pipe.xadd(out, fields, maxlen=keys.STREAM_MAXLEN, approximate=True)
                if record.kind == "end":
                    pipe.delete(self.key("hb"))
                    pipe.expire(self.key("run"), keys.KEEP_S)
                    pipe.publish(keys.ends_channel(self.queue), self.execution)
            pipe.expire(out, keys.KEEP_S)
            await pipe.execute()


class StreamSink(OutputSink):
    """The child's output sink: each chunk to the writer, plus the bounded text tail."""

    def __init__(self, writer: StreamWriter, tail_bytes: int) -> None:
        super().__init__(None, tail_bytes=tail_bytes)
        self.writer = writer

    def feed(self, data: bytes) -> None:
        super().feed(data)  # the tail only: there is no file
        self.writer.output(data)

    def write_note(self, text: str) -> None:
        self.writer.output(text.encode())
