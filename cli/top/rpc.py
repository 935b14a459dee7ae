"""An asyncio JSON-RPC connection to the daemon, for `aiwg top` (Textual runs on asyncio;
aiwgd.client is blocking).

One connection carries calls in flight at once (each waits for the reply with its id)
and the daemon's notifications (events, task.output, service.output), which go to
`on_notification` in the order they came. Errors are aiwgd.client's: DaemonNotRunning
when nothing answers, RpcError for an error object, ProtocolError when the daemon hangs
up (every call still waiting gets it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import Any

from aiwgd.client import DaemonNotRunning, ProtocolError, result_of

# A task.output notification carries up to the `limit` bytes asked for, JSON-escaped
# (up to 6x for control characters): far above asyncio's 64 KiB default line limit.
LINE_LIMIT = 8 * 1024 * 1024
CALL_TIMEOUT_S = 30.0

Notification = Callable[[str, dict[str, Any]], None]


class Rpc:
    def __init__(self, socket_path: str, on_notification: Notification) -> None:
        self.socket_path = socket_path
        self.on_notification = on_notification
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self.closed = asyncio.Event()

    async def open(self) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=LINE_LIMIT)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonNotRunning(self.socket_path, exc.strerror or "") from None
        except OSError as exc:
            raise DaemonNotRunning(self.socket_path, str(exc)) from None
        self._writer = writer
        self._reader_task = asyncio.create_task(self._read(reader), name="top-rpc-reader")

    async def call(self, method: str, timeout: float | None = CALL_TIMEOUT_S, **params: Any) -> Any:
        """`method`'s result; a follow (task.logs) passes timeout=None: it lasts as long
        as what it follows."""
        if self._writer is None or self.closed.is_set():
            raise ProtocolError("not connected to the daemon")
        ident = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = fut
        line = {"jsonrpc": "2.0", "method": method, "params": params, "id": ident}
        try:
            self._writer.write((json.dumps(line, separators=(",", ":")) + "\n").encode())
            await self._writer.drain()
            reply = await asyncio.wait_for(fut, timeout)
        except (ConnectionError, OSError) as exc:
            raise ProtocolError(f"connection lost: {exc}") from None
        except TimeoutError:
            raise TimeoutError(f"{method}: no answer from the daemon within {timeout:g}s") from None
        finally:
            self._pending.pop(ident, None)
        return result_of(reply)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        why = "the daemon closed the connection"
        try:
            while line := await reader.readline():
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue  # one bad line must not end the view
                for item in msg if isinstance(msg, list) else [msg]:
                    self._dispatch(item)
        except (ConnectionError, OSError, ValueError) as exc:  # ValueError: over LINE_LIMIT
            why = f"connection lost: {exc}"
        finally:
            self.closed.set()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ProtocolError(why))

    def _dispatch(self, item: Any) -> None:
        if not isinstance(item, dict):
            return
        if "id" not in item and isinstance(item.get("method"), str):
            params = item.get("params")
            self.on_notification(item["method"], params if isinstance(params, dict) else {})
            return
        ident = item.get("id")
        fut = self._pending.get(ident) if isinstance(ident, int) else None
        if fut is not None and not fut.done():
            fut.set_result(item)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        self.closed.set()
