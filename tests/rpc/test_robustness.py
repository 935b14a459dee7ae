"""Connection-level robustness of the RPC socket: line limits, abandoned and slow
clients, pipelining, many connections, no leaks, and the peer-uid check."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from typing import Any

import psutil
import pytest

from tests import rpcfixtures
from tests.rawrpc import Conn, exchange, one, req
from tests.rpcfixtures import (
    BAD_PARAMS,
    FORBIDDEN,
    LIMIT_EXCEEDED,
    error_of,
)
from tests.utils import DaemonProc, wait_for

# The shared daemon and its health check (fixtures), bound here so pytest uses them
# for this module: one daemon for the module, checked after every test.
shared = rpcfixtures.shared
still_serving = rpcfixtures.still_serving


def test_line_over_the_limit_errors_then_closes_without_hurting_others(
    shared: DaemonProc,
) -> None:
    with Conn(shared.root) as bystander, Conn(shared.root) as offender:
        bystander.send(json.dumps(req("ping", "before")).encode() + b"\n")
        assert bystander.json()["id"] == "before"
        # The daemon may hang up before we finish sending: that is the point.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            offender.send(
                b'{"jsonrpc":"2.0","method":"ping","params":{"x":"' + b"y" * (1024 * 1024 + 10)
            )
        err = error_of(json.loads(offender.line()), LIMIT_EXCEEDED)
        assert "1048576 bytes" in err["message"]
        assert offender.line() == b""  # then closed
        bystander.send(json.dumps(req("ping", "after")).encode() + b"\n")
        assert bystander.json() == {"jsonrpc": "2.0", "result": "pong", "id": "after"}


def test_line_just_under_the_limit_is_served(shared: DaemonProc) -> None:
    head = b'{"jsonrpc":"2.0","method":"ping","id":1,"params":{"pad":"'
    tail = b'"}}'
    line = head + b"x" * (1024 * 1024 - len(head) - len(tail)) + tail
    assert len(line) == 1024 * 1024
    err = error_of(one(shared.root, line), BAD_PARAMS, 1)  # parsed: only "pad" is wrong
    assert "pad" in err["message"]


def test_half_a_line_then_disconnect(shared: DaemonProc) -> None:
    for _ in range(20):
        with Conn(shared.root) as c:
            c.send(b'{"jsonrpc":"2.0","method":"pi')
    with Conn(shared.root) as c:
        c.send(b'{"jsonrpc":"2.0","method":"ping","id":1}')
        c.sock.shutdown(socket.SHUT_WR)  # EOF without newline: never executed, no reply
        assert c.line() == b""
    wait_for(
        lambda: shared.call("daemon.status")["subsystems"]["rpc"]["connections"] == 1,
        5,
        "abandoned connections to be dropped",
    )


def test_pipelining_on_one_connection(shared: DaemonProc) -> None:
    n = 300
    data = b"".join(json.dumps(req("ping", i)).encode() + b"\n" for i in range(n))
    replies = exchange(shared.root, data)
    assert sorted(r["id"] for r in replies) == list(range(n))
    assert all(r["result"] == "pong" for r in replies)


def test_many_concurrent_connections(shared: DaemonProc) -> None:
    conns = [Conn(shared.root) for _ in range(200)]
    try:
        for i, c in enumerate(conns):  # all open at once, all asking before anyone reads
            c.send(json.dumps(req("ping", i)).encode() + b"\n")
        assert [c.json()["id"] for c in conns] == list(range(200))
    finally:
        for c in conns:
            c.close()


def test_slow_and_silent_clients_do_not_delay_others(shared: DaemonProc) -> None:
    silent = Conn(shared.root)  # connects and says nothing
    dribbler = Conn(shared.root)  # sends half a request and stalls
    dribbler.send(b'{"jsonrpc":"2.0","me')
    hog = Conn(shared.root)  # floods big replies and never reads them
    hog.sock.setblocking(False)
    flood = json.dumps(req("rpc.discover", 1)).encode() + b"\n"
    sent = 0
    try:
        while sent < 20_000:
            hog.sock.send(flood)
            sent += 1
    except BlockingIOError:
        pass  # the daemon stopped reading from it: backpressure, not a pile-up
    try:
        for i in range(20):
            with Conn(shared.root, timeout=2.0) as c:
                c.send(json.dumps(req("ping", i)).encode() + b"\n")
                assert c.json()["result"] == "pong"
    finally:
        for c in (silent, dribbler, hog):
            c.close()


def test_no_fd_or_connection_leak_after_abuse(shared: DaemonProc) -> None:
    proc = psutil.Process(shared.pid)
    wait_for(
        lambda: shared.call("daemon.status")["subsystems"]["rpc"]["connections"] == 1,
        5,
        "earlier connections to close",
    )
    before = proc.num_fds()
    for _ in range(30):
        exchange(shared.root, b"\xff garbage\n[1,2]\n{}\n")
        with Conn(shared.root) as c:
            c.send(b"[[[[")
    wait_for(lambda: proc.num_fds() <= before, 5, f"fds back to {before}")


# ---- peer credentials -------------------------------------------------------------------

_AS_NOBODY = """
import json, os, socket, sys
os.setgroups([]); os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(json.dumps({"connect_error": exc.errno})); sys.exit(0)
s.settimeout(10)
try:  # the daemon may already have refused and closed: a reset is fine
    s.sendall(b'{"jsonrpc":"2.0","method":"ping","id":1}\\n')
except OSError:
    pass
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except ConnectionResetError:
        break
    if not chunk:
        break
    data += chunk
print(json.dumps({"reply": data.decode()}))
"""


def _connect_as_nobody(sock_path: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _AS_NOBODY, sock_path], capture_output=True, text=True, timeout=20
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become another uid")
def test_other_uid_is_refused(start_daemon: Any) -> None:
    d = start_daemon()
    sock_path = str(d.paths.socket)
    assert stat.S_IMODE(d.paths.daemon_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(d.paths.socket.stat().st_mode) == 0o600
    # First line of defence: with the daemon's own modes another user cannot connect.
    os.chmod(d.root, 0o711)
    os.chmod(d.paths.aiwg_dir, 0o711)
    assert _connect_as_nobody(sock_path) == {"connect_error": 13}  # EACCES
    # Second line: even if someone loosens the modes, SO_PEERCRED refuses the peer.
    os.chmod(d.paths.daemon_dir, 0o711)
    os.chmod(sock_path, 0o666)
    reply = json.loads(_connect_as_nobody(sock_path)["reply"])
    err = error_of(reply, FORBIDDEN)
    assert "65534" in err["message"]
    assert "refused connection from another user" in d.paths.log_file.read_text()
    assert d.call("ping") == "pong"  # the owner (root) is still served


def test_concurrent_pipelined_replies_never_interleave(shared: DaemonProc) -> None:
    """Concurrent writers on one connection never interleave bytes within a line."""
    results: list[list[Any]] = []

    def worker() -> None:
        data = b"".join(json.dumps(req("rpc.discover", i)).encode() + b"\n" for i in range(50))
        results.append(exchange(shared.root, data))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 4
    for replies in results:
        assert sorted(r["id"] for r in replies) == list(range(50))
        assert all(r["result"]["openrpc"] for r in replies)
