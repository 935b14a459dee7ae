"""JSON-RPC 2.0 over the socket, to the letter: the spec's examples and hostile input.

Everything goes over raw sockets to a real daemon process. The spec's example methods
(subtract, sum, ...) do not exist here, so the examples use real methods where the
spec's method would succeed and keep the spec's names where it expects an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.rawrpc import Conn, exchange, one, req
from tests.utils import BASE_CONFIG, DaemonProc, wait_for, write_config

PARSE, INVALID_REQ, NO_METHOD, BAD_PARAMS = -32700, -32600, -32601, -32602
LIMIT_EXCEEDED, FORBIDDEN = -32004, -32005


@pytest.fixture(scope="module")
def shared() -> Iterator[DaemonProc]:
    """One daemon for the read-only protocol tests (each test leaves it healthy)."""
    root = Path(tempfile.mkdtemp(prefix="aiwg-", dir="/tmp")).resolve()
    write_config(root, BASE_CONFIG)
    d = DaemonProc(root).start()
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _still_serving(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test on the shared daemon: same process, still answering."""
    yield
    if "shared" in request.fixturenames:
        d: DaemonProc = request.getfixturevalue("shared")
        assert d.proc is not None and d.proc.poll() is None, d.stderr()
        assert one(d.root, req("ping", "after")) == {"jsonrpc": "2.0", "result": "pong",
                                                     "id": "after"}  # fmt: skip


def error_of(reply: Any, code: int, id_: Any = None) -> dict[str, Any]:
    assert isinstance(reply, dict), reply
    assert set(reply) == {"jsonrpc", "error", "id"}, reply
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == id_, reply
    assert reply["error"]["code"] == code, reply
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    err: dict[str, Any] = reply["error"]
    return err


# ---- the specification's examples ------------------------------------------------------


def test_call_with_named_params(start_daemon: Any) -> None:
    d = start_daemon()
    reply = one(d.root, {"jsonrpc": "2.0", "method": "daemon.stop", "params": {"fast": False},
                         "id": 3})  # fmt: skip
    assert reply == {"jsonrpc": "2.0", "result": {"stopping": True, "pid": d.pid}, "id": 3}
    assert d.wait_exit() == 0


def test_spec_named_params_example_on_unknown_method(shared: DaemonProc) -> None:
    reply = one(shared.root, {"jsonrpc": "2.0", "method": "subtract",
                              "params": {"subtrahend": 23, "minuend": 42}, "id": 3})  # fmt: skip
    error_of(reply, NO_METHOD, 3)


def test_notifications_get_no_reply_at_all(shared: DaemonProc) -> None:
    lines = [
        {"jsonrpc": "2.0", "method": "update", "params": [1, 2, 3, 4, 5]},  # spec example
        {"jsonrpc": "2.0", "method": "foobar"},  # spec example
        {"jsonrpc": "2.0", "method": "ping"},  # exists: runs, still silent
        {"jsonrpc": "2.0", "method": "ping", "params": {"bogus": 1}},  # bad params: silent
        {"jsonrpc": "2.0", "method": "daemon.stop", "params": {"fast": "no"}},
    ]
    data = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    assert exchange(shared.root, data) == []


def test_notification_is_executed(start_daemon: Any) -> None:
    d = start_daemon()
    assert exchange(d.root, b'{"jsonrpc": "2.0", "method": "daemon.stop"}\n') == []
    assert d.wait_exit() == 0  # it ran, silently


def test_non_existent_method(shared: DaemonProc) -> None:
    err = error_of(one(shared.root, {"jsonrpc": "2.0", "method": "foobar", "id": "1"}),
                   NO_METHOD, "1")  # fmt: skip
    assert err["message"] == "Method not found"
    assert err["data"] == {"method": "foobar"}


def test_invalid_json(shared: DaemonProc) -> None:
    reply = one(shared.root, b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert error_of(reply, PARSE)["message"] == "Parse error"


def test_invalid_request_object(shared: DaemonProc) -> None:
    reply = one(shared.root, {"jsonrpc": "2.0", "method": 1, "params": "bar"})
    err = error_of(reply, INVALID_REQ)
    assert err["message"] == "Invalid Request"
    assert "method" in err["data"]["detail"]


def test_batch_with_invalid_json(shared: DaemonProc) -> None:
    data = (b'[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
            b'{"jsonrpc": "2.0", "method"]')  # fmt: skip
    error_of(one(shared.root, data), PARSE)  # one error object, not an array


def test_empty_array(shared: DaemonProc) -> None:
    error_of(one(shared.root, b"[]"), INVALID_REQ)  # one object, not an array


def test_invalid_batch_of_one(shared: DaemonProc) -> None:
    reply = one(shared.root, b"[1]")
    assert isinstance(reply, list) and len(reply) == 1
    error_of(reply[0], INVALID_REQ)


def test_invalid_batch_of_three(shared: DaemonProc) -> None:
    reply = one(shared.root, b"[1,2,3]")
    assert isinstance(reply, list) and len(reply) == 3
    for item in reply:
        error_of(item, INVALID_REQ)


def test_mixed_batch(shared: DaemonProc) -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "ping", "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "daemon.status", "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "ping", "params": {"x": 1}, "id": "9"},
    ]
    reply = one(shared.root, batch)
    assert isinstance(reply, list) and len(reply) == 5  # the notification is silent
    by_id: dict[Any, list[dict[str, Any]]] = {}
    for item in reply:
        by_id.setdefault(item["id"], []).append(item)
    assert by_id["1"] == [{"jsonrpc": "2.0", "result": "pong", "id": "1"}]
    assert by_id["2"][0]["result"]["pid"] == shared.pid
    error_of(by_id[None][0], INVALID_REQ)
    error_of(by_id["5"][0], NO_METHOD, "5")
    error_of(by_id["9"][0], BAD_PARAMS, "9")


def test_batch_of_only_notifications_gets_nothing(shared: DaemonProc) -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1, 2, 4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "ping"},
    ]
    assert exchange(shared.root, json.dumps(batch).encode() + b"\n") == []


# ---- params -----------------------------------------------------------------------------


def test_unknown_param_is_named(shared: DaemonProc) -> None:
    err = error_of(one(shared.root, req("daemon.stop", 7, fsat=True)), BAD_PARAMS, 7)
    assert "fsat" in err["message"] and 'did you mean "fast"' in err["message"]
    assert err["data"]["errors"] == ['fsat: unknown key; did you mean "fast"?']


def test_wrong_param_type_names_param_and_value(shared: DaemonProc) -> None:
    err = error_of(one(shared.root, req("daemon.stop", 8, fast="yes")), BAD_PARAMS, 8)
    assert err["data"]["errors"] == ['fast: "yes" is not true or false']


def test_param_on_method_without_params(shared: DaemonProc) -> None:
    err = error_of(one(shared.root, req("ping", 9, x=1)), BAD_PARAMS, 9)
    assert "x: unknown key" in err["message"]


def test_positional_params_are_refused(shared: DaemonProc) -> None:
    reply = one(shared.root, {"jsonrpc": "2.0", "method": "daemon.stop", "params": [True],
                              "id": 10})  # fmt: skip
    assert "named" in error_of(reply, BAD_PARAMS, 10)["message"]


def test_params_must_be_structured(shared: DaemonProc) -> None:
    for params in ("bar", 1, None, True):
        reply = one(shared.root, {"jsonrpc": "2.0", "method": "ping", "params": params, "id": 1})
        assert "params" in error_of(reply, INVALID_REQ)["data"]["detail"]


# ---- envelope details -------------------------------------------------------------------


@pytest.mark.parametrize("id_", ["abc", 0, -5, 1.5, None, "\u00e9\u4e2d"])
def test_ids_of_every_allowed_type_are_echoed(shared: DaemonProc, id_: Any) -> None:
    assert one(shared.root, req("ping", id_)) == {"jsonrpc": "2.0", "result": "pong", "id": id_}


@pytest.mark.parametrize("id_", [True, [1], {"a": 1}])
def test_ids_of_other_types_are_invalid(shared: DaemonProc, id_: Any) -> None:
    error_of(one(shared.root, req("ping", id_)), INVALID_REQ)


@pytest.mark.parametrize(
    "request_obj",
    [
        {"jsonrpc": "1.0", "method": "ping", "id": 1},
        {"method": "ping", "id": 1},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "method": "ping", "id": 1, "extra": True},
        {"jsonrpc": 2.0, "method": "ping", "id": 1},
    ],
)
def test_malformed_envelopes(shared: DaemonProc, request_obj: Any) -> None:
    error_of(one(shared.root, request_obj), INVALID_REQ)


def test_lone_surrogate_in_id_gets_a_valid_reply(shared: DaemonProc) -> None:
    reply = one(shared.root, b'{"jsonrpc":"2.0","method":"ping","id":"\\ud800"}')
    assert reply == {"jsonrpc": "2.0", "result": "pong", "id": "\ud800"}


def test_crlf_and_blank_lines_are_tolerated(shared: DaemonProc) -> None:
    replies = exchange(shared.root, b'\n\r\n{"jsonrpc":"2.0","method":"ping","id":1}\r\n\n')
    assert replies == [{"jsonrpc": "2.0", "result": "pong", "id": 1}]


# ---- hostile bytes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code", "detail"),
    [
        (b"null", INVALID_REQ, "JSON object"),
        (b'"just a string"', INVALID_REQ, "JSON object"),
        (b"42", INVALID_REQ, "JSON object"),
        (b"\x00\x01\x02garbage\x7f", PARSE, ""),
        (b"\xff\xfe\xfd", PARSE, "UTF-8"),
        (b'{"jsonrpc":"2.0","method":"p\xc3ing","id":1}', PARSE, "UTF-8"),
        ('{"jsonrpc":"2.0","method":"ping","id":1}'.encode("utf-16-le"), PARSE, ""),
        (b'\xef\xbb\xbf{"jsonrpc":"2.0","method":"ping","id":1}', PARSE, ""),
        (b'{"jsonrpc":"2.0","method":"ping","id":' + b"9" * 5000 + b"}", PARSE, "too long"),
        (b'{"jsonrpc":"2.0","method":"ping","id":1e999}', PARSE, "out of range"),
        (b'{"jsonrpc":"2.0","method":"ping","id":NaN}', PARSE, "NaN"),
        (b'{"jsonrpc":"2.0","method":"ping","id":-Infinity}', PARSE, "Infinity"),
        (b"[" * 100_000 + b"]" * 100_000, PARSE, "too deep"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, PARSE, "too deep"),
        (b"{", PARSE, ""),
    ],
)
def test_hostile_input_gets_a_precise_error(
    shared: DaemonProc, data: bytes, code: int, detail: str
) -> None:
    err = error_of(one(shared.root, data), code)
    if detail:
        assert detail in json.dumps(err["data"]), err


def test_huge_but_legal_numbers_are_just_values(shared: DaemonProc) -> None:
    big = 10**4000
    reply = one(shared.root, b'{"jsonrpc":"2.0","method":"ping","id":' + str(big).encode() + b"}")
    assert reply == {"jsonrpc": "2.0", "result": "pong", "id": big}


def test_line_over_the_limit_errors_then_closes_without_hurting_others(
    shared: DaemonProc,
) -> None:
    with Conn(shared.root) as bystander, Conn(shared.root) as offender:
        bystander.send(json.dumps(req("ping", "before")).encode() + b"\n")
        assert bystander.json()["id"] == "before"
        # The daemon may hang up before we finish sending: that is the point.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            offender.send(b'{"jsonrpc":"2.0","method":"ping","params":{"x":"'
                          + b"y" * (1024 * 1024 + 10))  # fmt: skip
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
    wait_for(lambda: shared.call("daemon.status")["subsystems"]["rpc"]["connections"] == 1,
             5, "abandoned connections to be dropped")  # fmt: skip


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
    wait_for(lambda: shared.call("daemon.status")["subsystems"]["rpc"]["connections"] == 1,
             5, "earlier connections to close")  # fmt: skip
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
    out = subprocess.run([sys.executable, "-c", _AS_NOBODY, sock_path], capture_output=True,
                         text=True, timeout=20)  # fmt: skip
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
