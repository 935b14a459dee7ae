"""The Unix socket server: accepting connections, peer checks, the connection cap.

One JSON text per line; framing, per-connection concurrency and backpressure are each
connection's own (aiwgd.rpc.connection).

Connections take at most half the open-files limit (raised toward the hard limit at
start): the rest belong to the task store, the logs and the children's pipes, which
idle clients must never starve. A client over the cap is told so (-32004) and closed,
and refusals are logged once per interval. The accept loop is ours, not asyncio's:
asyncio's logs a traceback for every accept() that fails for want of descriptors,
thousands a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
from pathlib import Path
from typing import Any

from aiwgd import errors
from aiwgd.config import Config
from aiwgd.infra.fdlimit import raise_open_files_limit
from aiwgd.infra.throttle import Throttle
from aiwgd.lifecycle import Subsystem
from aiwgd.rpc.connection import CallContext, Connection
from aiwgd.rpc.protocol import Dispatcher, encode, error_object

log = logging.getLogger("aiwgd.rpc")

MAX_CONNECTIONS = 1024
# A deep backlog: a burst of clients must queue, not get EAGAIN (the default of 100
# fills up as soon as 100 scripts connect at once).
BACKLOG = 1024
ACCEPTS_PER_WAKE = 128  # then other work runs; the rest are taken on the next turn
REFUSAL_LOG_INTERVAL_S = 10.0
ACCEPT_RETRY_S = 1.0  # after accept() found no descriptor left
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def connection_cap(fd_limit: int) -> int:
    """Connections allowed under an open-files limit: half of it, at most MAX_CONNECTIONS."""
    return max(8, min(MAX_CONNECTIONS, fd_limit // 2))


def peer_uid(sock: socket.socket) -> int | None:
    """The connecting process's uid, or None where the OS cannot say."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None  # not Linux: the 0700 dir and 0600 socket still guard access
    raw = sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


class RpcServer(Subsystem):
    name = "rpc"

    def __init__(self, path: str, dispatcher: Dispatcher, max_line: int) -> None:
        self.path = path
        self.dispatcher = dispatcher
        self.max_line = max_line
        self._listener: socket.socket | None = None
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()  # unfinished requests, all connections
        self._opening: set[asyncio.Task[None]] = set()  # accepted, transport being made
        self._accepted = 0  # accepted sockets that have no Connection yet
        self._uid = os.getuid()
        self.fd_limit = 0
        self.max_connections = MAX_CONNECTIONS
        self.refused = 0
        self._refusals = Throttle(REFUSAL_LOG_INTERVAL_S)
        self._fds_out = Throttle(REFUSAL_LOG_INTERVAL_S)

    async def start(self) -> None:
        self.fd_limit = raise_open_files_limit()
        self.max_connections = connection_cap(self.fd_limit)
        Path(self.path).unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old = os.umask(0o177)  # socket born 0600: no window where others may connect
            try:
                sock.bind(self.path)
            finally:
                os.umask(old)
            os.chmod(self.path, 0o600)
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._listener = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._accept)

    async def stop(self, fast: bool = False) -> None:
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        if self.tasks and not fast:
            # Let replies already being computed (daemon.stop's own answer) go out.
            await asyncio.wait(set(self.tasks), timeout=0.5)
        for conn in list(self.connections):
            conn.close()
        for task in [*self.tasks, *self._opening]:
            task.cancel()
        Path(self.path).unlink(missing_ok=True)

    async def apply_config(self, config: Config) -> None:
        self.max_line = config.daemon.max_request_bytes

    def status(self) -> dict[str, Any]:
        return {
            "state": "running" if self._listener else "stopped",
            "socket": self.path,
            "connections": len(self.connections),
            "max_connections": self.max_connections,
            "refused": self.refused,
            "fd_limit": self.fd_limit,
        }

    # ---- accepting ---------------------------------------------------------------------
    def _accept(self) -> None:
        """The listener is readable: take what is waiting (a bounded number per turn)."""
        for _ in range(ACCEPTS_PER_WAKE):
            if self._listener is None:
                return
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in _OUT_OF_FDS:
                    raise
                self._pause_accepting(exc)
                return
            if len(self.connections) + self._accepted >= self.max_connections:
                self._refuse(conn)
                continue
            conn.setblocking(False)
            self._accepted += 1
            task = asyncio.create_task(self._open(conn))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)

    def _refuse(self, conn: socket.socket) -> None:
        """Over the cap: say why and close, at once (nothing is kept for this client)."""
        message = (
            f"Limit exceeded: too many connections (at most {self.max_connections}); "
            "close idle ones and retry"
        )
        with contextlib.suppress(OSError):  # a few bytes fit any socket buffer
            conn.send(encode(error_object(errors.LIMIT_EXCEEDED, message)))
        conn.close()
        self.refused += 1
        if (due := self._refusals.hit()) is not None:
            log.warning(
                "connections refused: too many open",
                extra={
                    "refused": due.count,
                    "since_s": due.since_s,
                    "max_connections": self.max_connections,
                },
            )

    def _pause_accepting(self, exc: OSError) -> None:
        """No descriptor left for accept(): stop listening a moment, say so once a while."""
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._listener.fileno())
        loop.call_later(ACCEPT_RETRY_S, self._resume_accepting)
        if (due := self._fds_out.hit()) is not None:
            log.error(
                "cannot accept connections: out of file descriptors",
                extra={"error": str(exc), "times": due.count, "fd_limit": self.fd_limit},
            )

    def _resume_accepting(self) -> None:
        if self._listener is not None:
            asyncio.get_running_loop().add_reader(self._listener.fileno(), self._accept)

    async def _open(self, sock: socket.socket) -> None:
        made = False

        def protocol() -> Connection:
            # Counted as a connection from the moment it exists, and no longer as
            # accepted: never both, never neither (the cap is checked in between).
            nonlocal made
            made = True
            self._accepted -= 1
            conn = Connection(self)
            self.connections.add(conn)
            return conn

        try:
            await asyncio.get_running_loop().connect_accepted_socket(protocol, sock=sock)
        except OSError:
            sock.close()
        finally:
            if not made:
                self._accepted -= 1

    # ---- what each connection asks of its server (aiwgd.rpc.connection.Host) ---------
    def opened(self, conn: Connection) -> None:
        assert conn.transport is not None
        sock = conn.transport.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else None
        if uid is not None and uid not in (self._uid, 0):
            log.warning("refused connection from another user", extra={"peer_uid": uid})
            conn.refuse(errors.FORBIDDEN, f"Forbidden: peer uid {uid} is not the daemon's owner")

    def closed(self, conn: Connection) -> None:
        self.connections.discard(conn)

    async def answer(self, line: bytes, ctx: CallContext) -> bytes | None:
        return await self.dispatcher.handle(line, ctx)
