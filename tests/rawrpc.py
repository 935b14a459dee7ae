"""Raw-socket access to a daemon: bytes in, bytes out, no client library in between.

The protocol tests need to send what a well-behaved client never would (garbage, half
lines, NaN) and to prove that *nothing* came back (notifications). `exchange()` sends,
half-closes, and reads to EOF: the daemon finishes every request a half-closed client
made before hanging up, so "no reply" is a certainty, not a timeout guess.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from aiwgd.config.paths import Paths


def connect(root: Any, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(Paths(root).socket_address())
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the daemon closes (ECONNRESET counts as a close)."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


class Conn:
    """A raw connection that reads reply lines with its own buffer."""

    def __init__(self, root: Any, timeout: float = 10.0) -> None:
        self.sock = connect(root, timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """One reply line (without its newline); b"" if the daemon closed first."""
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                rest, self.buf = self.buf, b""
                return rest
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def json(self) -> Any:
        line = self.line()
        assert line, "the daemon closed the connection instead of answering"
        return json.loads(line)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def exchange(root: Any, data: bytes, timeout: float = 10.0) -> list[Any]:
    """Send `data`, half-close, and return every JSON reply line the daemon sent."""
    with connect(root, timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        raw = read_all(sock)
    assert raw == b"" or raw.endswith(b"\n"), f"reply not newline-terminated: {raw[:200]!r}"
    return [json.loads(line) for line in raw.splitlines()]


def one(root: Any, request: Any) -> Any:
    """Send one JSON request (object, batch or raw bytes) and return the single reply."""
    data = request if isinstance(request, bytes) else json.dumps(request).encode()
    replies = exchange(root, data + b"\n")
    assert len(replies) == 1, f"expected exactly one reply line, got {replies!r}"
    return replies[0]


def req(method: str, id_: Any = 1, **params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params:
        out["params"] = params
    return out
