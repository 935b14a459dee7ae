"""One client connection: framing, per-connection concurrency, backpressure, replies.

An asyncio Protocol rather than streams: a request line is cut out of the bytes in the
same loop turn that read them and its handler starts at once (eagerly on Python 3.12+,
so a method that never waits, like `ping`, has replied before the turn ends). Streams
cost two more turns a request: one to wake the reading coroutine, one to start the
handler's task. Each line is still handled in its own task so a client may pipeline.

Backpressure, the same both ways: at IN_FLIGHT_PER_CONNECTION unfinished requests the
connection stops reading (the client's writes block in the kernel, nobody else
notices), and a handler whose reply finds the write buffer over its high-water mark
waits for it to drain, which in turn holds its slot.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, cast

from aiwgd import errors
from aiwgd.rpc.protocol import encode, error_object

log = logging.getLogger("aiwgd.rpc")

IN_FLIGHT_PER_CONNECTION = 64


class Host(Protocol):
    """What a connection needs from its server."""

    max_line: int
    tasks: set[asyncio.Task[None]]  # every unfinished request, for a stop to wait on

    async def answer(self, line: bytes, ctx: CallContext) -> bytes | None: ...

    def opened(self, conn: Connection) -> None: ...

    def closed(self, conn: Connection) -> None: ...


def _task_factory() -> Callable[[asyncio.AbstractEventLoop, Coroutine[Any, Any, None]], Any]:
    eager = getattr(asyncio, "eager_task_factory", None)  # Python 3.12+
    if eager is not None:
        return cast(Callable[[asyncio.AbstractEventLoop, Coroutine[Any, Any, None]], Any], eager)
    return lambda loop, coro: loop.create_task(coro)


_start_task = _task_factory()


class Connection(asyncio.Protocol):
    """One client. Methods get it as `ctx.conn` to push notifications or clean up."""

    _ids = itertools.count(1)

    def __init__(self, host: Host) -> None:
        self.id = next(self._ids)
        self.host = host
        self.closed = False
        self._finalized = False
        self.transport: asyncio.Transport | None = None
        self.in_flight: set[asyncio.Task[None]] = set()
        self._buf = bytearray()
        self._scan = 0  # where to resume looking for "\n": never rescan a long line
        self._waiting: collections.deque[bytes] = collections.deque()  # over the cap
        self._eof = False
        self._reading_paused = False
        self._drained: asyncio.Future[None] | None = None  # set while writes are paused
        self._on_close: list[Callable[[], None]] = []

    # ---- asyncio.Protocol ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.host.opened(self)  # it may refuse the peer: that closes us at once

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        buf = self._buf
        buf += data
        start = 0
        while not self.closed:
            nl = buf.find(b"\n", self._scan)
            if nl < 0:
                break
            line = bytes(buf[start:nl])
            start = self._scan = nl + 1
            if len(line) > self.host.max_line:
                self._too_long()
                return
            if line.strip():
                self._take(line)
        del buf[:start]
        self._scan = len(buf)  # no newline in what is left: never rescan a long line
        if len(buf) > self.host.max_line:
            self._too_long()

    def eof_received(self) -> bool:
        # A client that half-closes after sending (socat, nc -N) still gets its
        # replies: keep the transport open for writing until they are out. A partial
        # last line has nobody left to answer it and is dropped.
        self._eof = True
        if self.in_flight or self._waiting:
            return True
        self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()
        self._wake_writers()

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writers()

    # ---- requests ----------------------------------------------------------------------
    def _take(self, line: bytes) -> None:
        if len(self.in_flight) >= IN_FLIGHT_PER_CONNECTION:
            self._waiting.append(line)
            if not self._reading_paused and self.transport is not None:
                self.transport.pause_reading()
                self._reading_paused = True
            return
        task: asyncio.Task[None] = _start_task(
            asyncio.get_running_loop(), self._handle(line, CallContext(self))
        )
        if not task.done():  # it waits for something: track it until it ends
            self.in_flight.add(task)
            self.host.tasks.add(task)

    async def _handle(self, line: bytes, ctx: CallContext) -> None:
        try:
            reply = await self.host.answer(line, ctx)
            if reply is not None:
                await self.send(reply)
        except Exception:
            log.exception("request handling failed")
        finally:
            # Here, not in a done callback: that would cost one more loop turn a request.
            self._finished(asyncio.current_task())

    def _finished(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self.in_flight.discard(task)
            self.host.tasks.discard(task)
        while self._waiting and len(self.in_flight) < IN_FLIGHT_PER_CONNECTION:
            if self.closed:
                self._waiting.clear()
                break
            self._take(self._waiting.popleft())
        if self._reading_paused and not self._waiting and self.transport is not None:
            self._reading_paused = False
            if not self.closed:
                self.transport.resume_reading()
        if self._eof and not self.in_flight and not self._waiting:
            self.close()

    def _too_long(self) -> None:
        message = f"Limit exceeded: request line is over {self.host.max_line} bytes"
        log.warning("request line over the limit; closing", extra={"conn": self.id})
        if self.transport is not None and not self.closed:
            self.transport.write(encode(error_object(errors.LIMIT_EXCEEDED, message)))
        self._buf.clear()
        self.close()

    # ---- replies -----------------------------------------------------------------------
    async def send(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            return
        self.transport.write(data)
        while self._drained is not None and not self.closed:
            await asyncio.shield(self._drained)

    async def notify(self, method: str, params: Any) -> None:
        """Send a server-initiated notification (no id, so no reply is expected)."""
        await self.send(encode({"jsonrpc": "2.0", "method": method, "params": params}))

    def refuse(self, code: int, message: str) -> None:
        """Say why, then hang up (nothing is kept for this client)."""
        if self.transport is not None:
            self.transport.write(encode(error_object(code, message)))
        self.close()

    def _wake_writers(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    # ---- ending ------------------------------------------------------------------------
    def on_close(self, callback: Callable[[], None]) -> None:
        self._on_close.append(callback)

    def close(self) -> None:
        """Hang up (what is buffered is still sent) and run the close callbacks once."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if self._finalized:
            return
        self._finalized = self.closed = True
        self._waiting.clear()
        callbacks, self._on_close = self._on_close, []
        for cb in callbacks:
            try:
                cb()
            except Exception:
                log.exception("connection close callback failed")
        self.host.closed(self)


class CallContext:
    """What a method handler can reach besides its params."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
