"""The Unix socket server: framing, peer checks, per-connection concurrency.

One JSON text per line. Each line is handled in its own asyncio task so a client may
pipeline requests; a per-connection semaphore bounds that, which also gives natural
backpressure: a client that sends but never reads stops being read from, and nobody
else notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiwgd import errors
from aiwgd.config import Config
from aiwgd.lifecycle import Subsystem
from aiwgd.rpc.protocol import Dispatcher, encode, error_object

log = logging.getLogger("aiwgd.rpc")

MAX_CONNECTIONS = 1024
IN_FLIGHT_PER_CONNECTION = 64
READ_CHUNK = 65536


def peer_uid(sock: socket.socket) -> int | None:
    """The connecting process's uid, or None where the OS cannot say."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None  # not Linux: the 0700 dir and 0600 socket still guard access
    raw = sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


class Connection:
    """One client. Methods get it as `ctx.conn` to push notifications or clean up."""

    _ids = itertools.count(1)

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.id = next(self._ids)
        self.writer = writer
        self.closed = False
        self._finalized = False
        self._lock = asyncio.Lock()
        self._on_close: list[Callable[[], None]] = []
        self.in_flight: set[asyncio.Task[None]] = set()

    async def send(self, data: bytes) -> None:
        if self.closed:
            return
        async with self._lock:
            try:
                self.writer.write(data)
                await self.writer.drain()
            except (ConnectionError, RuntimeError):
                self.closed = True

    async def notify(self, method: str, params: Any) -> None:
        """Send a server-initiated notification (no id, so no reply is expected)."""
        await self.send(encode({"jsonrpc": "2.0", "method": method, "params": params}))

    def on_close(self, callback: Callable[[], None]) -> None:
        self._on_close.append(callback)

    def close(self) -> None:
        if self._finalized:
            return
        self._finalized = self.closed = True
        callbacks, self._on_close = self._on_close, []
        for cb in callbacks:
            try:
                cb()
            except Exception:
                log.exception("connection close callback failed")
        with contextlib.suppress(Exception):
            self.writer.close()


class CallContext:
    """What a method handler can reach besides its params."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn


class RpcServer(Subsystem):
    name = "rpc"

    def __init__(self, path: str, dispatcher: Dispatcher, max_line: int) -> None:
        self.path = path
        self.dispatcher = dispatcher
        self.max_line = max_line
        self._server: asyncio.AbstractServer | None = None
        self.connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._uid = os.getuid()

    async def start(self) -> None:
        Path(self.path).unlink(missing_ok=True)
        old = os.umask(0o177)  # socket born 0600: no window where others may connect
        try:
            # A deep backlog: a burst of clients must queue, not get EAGAIN (the
            # default of 100 fills up as soon as 100 scripts connect at once).
            self._server = await asyncio.start_unix_server(
                self._serve, path=self.path, backlog=MAX_CONNECTIONS
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self, fast: bool = False) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._tasks and not fast:
            # Let replies already being computed (daemon.stop's own answer) go out.
            await asyncio.wait(set(self._tasks), timeout=0.5)
        for conn in list(self.connections):
            conn.close()
        for task in list(self._tasks):
            task.cancel()
        Path(self.path).unlink(missing_ok=True)

    async def apply_config(self, config: Config) -> None:
        self.max_line = config.daemon.max_request_bytes

    def status(self) -> dict[str, Any]:
        return {
            "state": "running" if self._server else "stopped",
            "socket": self.path,
            "connections": len(self.connections),
        }

    async def _reject(self, writer: asyncio.StreamWriter, code: int, message: str) -> None:
        with contextlib.suppress(Exception):
            writer.write(encode(error_object(code, message)))
            await writer.drain()
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else None
        if uid is not None and uid not in (self._uid, 0):
            log.warning("refused connection from another user", extra={"peer_uid": uid})
            await self._reject(
                writer, errors.FORBIDDEN, f"Forbidden: peer uid {uid} is not the daemon's owner"
            )
            return
        if len(self.connections) >= MAX_CONNECTIONS:
            await self._reject(
                writer, errors.LIMIT_EXCEEDED, "Limit exceeded: too many connections"
            )
            return
        conn = Connection(writer)
        self.connections.add(conn)
        slots = asyncio.Semaphore(IN_FLIGHT_PER_CONNECTION)
        try:
            async for line in self._lines(reader, conn):
                if not line.strip():
                    continue
                await slots.acquire()
                task = asyncio.create_task(self._handle(conn, line, slots))
                self._tasks.add(task)
                conn.in_flight.add(task)
                task.add_done_callback(self._tasks.discard)
                task.add_done_callback(conn.in_flight.discard)
            if conn.in_flight and not conn.closed:
                # A client that half-closes after sending (socat, nc -N) still gets its
                # replies: finish what it asked before hanging up.
                await asyncio.wait(set(conn.in_flight))
        finally:
            self.connections.discard(conn)
            conn.close()

    async def _lines(self, reader: asyncio.StreamReader, conn: Connection) -> AsyncIterator[bytes]:
        """Split the byte stream into lines, enforcing the (reloadable) line limit.

        Framing is done here rather than with StreamReader.readuntil, whose limit is
        fixed when the server is created: a reload must change the limit for everyone.
        """
        buf = b""
        start = 0  # where the unconsumed bytes begin
        scan = 0  # where to resume looking for "\n": never rescan a long line
        while not conn.closed:
            nl = buf.find(b"\n", scan)
            if nl < 0:
                if len(buf) - start > self.max_line:
                    await self._too_long(conn)
                    return
                try:
                    chunk = await reader.read(READ_CHUNK)
                except ConnectionError:
                    return
                if not chunk:
                    return  # EOF, possibly mid-line: nobody left to answer
                buf = buf[start:] + chunk
                scan = len(buf) - len(chunk)
                start = 0
                continue
            line = buf[start:nl]
            start = scan = nl + 1
            if len(line) > self.max_line:
                await self._too_long(conn)
                return
            yield line

    async def _too_long(self, conn: Connection) -> None:
        message = f"Limit exceeded: request line is over {self.max_line} bytes"
        log.warning("request line over the limit; closing", extra={"conn": conn.id})
        await conn.send(encode(error_object(errors.LIMIT_EXCEEDED, message)))

    async def _handle(self, conn: Connection, line: bytes, slots: asyncio.Semaphore) -> None:
        try:
            reply = await self.dispatcher.handle(line, CallContext(conn))
            if reply is not None:
                await conn.send(reply)
        except Exception:
            log.exception("request handling failed")
        finally:
            slots.release()
