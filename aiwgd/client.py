"""A small stdlib-only JSON-RPC client for the aiwgd socket, usable from any script.

    from aiwgd.client import Client, ClientError, DaemonNotRunning, RpcError

    with Client("/path/to/project") as c:
        print(c.call("daemon.status")["pid"])

Errors are typed: DaemonNotRunning (nothing answers on the socket), RpcError (the
daemon answered with an error object: .code, .message, .data), ProtocolError (a broken
or closed connection); ClientError is the base of all three. No answer in time raises
TimeoutError.

Importing this module loads only the stdlib and aiwgd.config.paths: no daemon code,
no typer (tests/client/test_user_script.py keeps it so).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from aiwgd.config.paths import Paths, resolve_root

__all__ = ["Client", "ClientError", "DaemonNotRunning", "ProtocolError", "RpcError", "result_of"]


class ClientError(Exception):
    """Base of every error this client raises."""


class DaemonNotRunning(ClientError):
    def __init__(self, socket_path: str, reason: str = "") -> None:
        self.socket_path = socket_path
        detail = f" ({reason})" if reason else ""
        super().__init__(f"daemon not running: nothing answers on {socket_path}{detail}")


class ProtocolError(ClientError):
    """The daemon sent something that is not a JSON-RPC response, or hung up."""


class RpcError(ClientError):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{message} (code {code})")

    def describe(self) -> str:
        """The message plus the detail a person needs (which method, what failed to parse)."""
        data = self.data if isinstance(self.data, dict) else {}
        for key in ("method", "detail"):
            if isinstance(data.get(key), str) and data[key] not in self.message:
                return f"{self.message}: {data[key]}"
        return self.message


def result_of(resp: dict[str, Any]) -> Any:
    """A JSON-RPC response's result; its error raised as RpcError (any client's framing,
    e.g. aiwg top's asyncio one, shares this)."""
    if "error" in resp:
        err = resp["error"] or {}
        raise RpcError(err.get("code", 0), err.get("message", ""), err.get("data"))
    return resp.get("result")


class Client:
    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        timeout: float | None = 30.0,
        socket_path: str | None = None,
    ) -> None:
        self.socket_path = socket_path or Paths(resolve_root(root)).socket_address()
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self._ids = itertools.count(1)
        self.pending_notifications: list[dict[str, Any]] = []

    # -- connection ------------------------------------------------------------------
    def connect(self) -> Client:
        if self._sock is not None:
            return self
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        delay = 0.001
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
                break
            except BlockingIOError:
                # The daemon's accept backlog is full (a burst of clients): it is
                # running, so wait for a slot rather than report it as down.
                sock.close()
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise TimeoutError("the daemon's socket is busy (backlog full)") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                sock.close()
                raise DaemonNotRunning(self.socket_path, exc.strerror or "") from None
            except OSError as exc:
                sock.close()
                raise DaemonNotRunning(self.socket_path, str(exc)) from None
        self._sock = sock
        return self

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- framing ---------------------------------------------------------------------
    def send(self, obj: Any) -> None:
        self.connect()
        assert self._sock is not None
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        try:
            self._sock.sendall(data)
        except TimeoutError:
            # A stopped daemon whose socket buffer is full: the same "no answer" as a read.
            raise TimeoutError(
                f"the daemon on {self.socket_path} took no request within {self.timeout:g}s"
            ) from None
        except OSError as exc:
            raise ProtocolError(f"connection lost while sending: {exc}") from None

    def read_message(self, timeout: float | None = -1.0) -> Any:
        """The next JSON text from the daemon (a response or a notification)."""
        assert self._sock is not None
        limit = self.timeout if timeout == -1.0 else timeout
        if timeout != -1.0:
            self._sock.settimeout(timeout)
        try:
            while b"\n" not in self._buf:
                try:
                    chunk = self._sock.recv(65536)
                except TimeoutError:
                    # Say which daemon and how long: a person decides whether to wait longer.
                    raise TimeoutError(
                        f"no answer from the daemon on {self.socket_path} within {limit:g}s"
                    ) from None
                except OSError as exc:
                    raise ProtocolError(f"connection lost: {exc}") from None
                if not chunk:
                    raise ProtocolError("the daemon closed the connection")
                self._buf += chunk
        finally:
            if timeout != -1.0:
                self._sock.settimeout(self.timeout)
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise ProtocolError(f"not JSON from the daemon: {line[:100]!r}") from None

    def _await_reply(self, ids: set[Any]) -> dict[Any, dict[str, Any]]:
        got: dict[Any, dict[str, Any]] = {}
        while ids - set(got):
            msg = self.read_message()
            for item in msg if isinstance(msg, list) else [msg]:
                if isinstance(item, dict) and "id" not in item and "method" in item:
                    self.pending_notifications.append(item)
                elif isinstance(item, dict) and item.get("id") in ids:
                    got[item["id"]] = item
                elif isinstance(item, dict) and item.get("id") is None and "error" in item:
                    result_of(item)  # an error the daemon could not tie to our id
        return got

    # -- calls -----------------------------------------------------------------------
    def call(self, method: str, **params: Any) -> Any:
        """Call `method` with named params and return its result (or raise RpcError)."""
        ident = next(self._ids)
        self.send({"jsonrpc": "2.0", "method": method, "params": params, "id": ident})
        return result_of(self._await_reply({ident})[ident])

    def notify(self, method: str, **params: Any) -> None:
        """Send a notification: the daemon runs it and never answers."""
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def batch(self, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        """Several calls in one batch; each item is a result or an RpcError instance."""
        ids = []
        reqs = []
        for method, params in calls:
            ident = next(self._ids)
            ids.append(ident)
            reqs.append({"jsonrpc": "2.0", "method": method, "params": params, "id": ident})
        self.send(reqs)
        got = self._await_reply(set(ids))
        out: list[Any] = []
        for ident in ids:
            try:
                out.append(result_of(got[ident]))
            except RpcError as exc:
                out.append(exc)
        return out

    def stream(
        self, method: str, on_notification: Callable[[dict[str, Any]], None], **params: Any
    ) -> Any:
        """Call a streaming method: notifications go to the callback until the reply."""
        ident = next(self._ids)
        self.send({"jsonrpc": "2.0", "method": method, "params": params, "id": ident})
        while True:
            msg = self.read_message(timeout=None)
            if isinstance(msg, dict) and "id" not in msg and "method" in msg:
                on_notification(msg)
            elif isinstance(msg, dict) and msg.get("id") == ident:
                return result_of(msg)

    def notifications(self) -> Iterator[dict[str, Any]]:
        """Yield server notifications (after a subscribe call) until the daemon hangs up."""
        while self.pending_notifications:
            yield self.pending_notifications.pop(0)
        while True:
            msg = self.read_message(timeout=None)
            if isinstance(msg, dict) and "method" in msg and "id" not in msg:
                yield msg
