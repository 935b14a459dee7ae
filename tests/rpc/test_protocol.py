"""JSON-RPC 2.0 over the socket, to the letter: the spec's examples and hostile input.

Everything goes over raw sockets to a real daemon process. The spec's example methods
(subtract, sum, ...) do not exist here, so the examples use real methods where the
spec's method would succeed and keep the spec's names where it expects an error.
Connection-level robustness (limits, slow clients, peers) is in test_robustness.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import rpcfixtures
from tests.rawrpc import exchange, one, req
from tests.rpcfixtures import (
    BAD_PARAMS,
    INVALID_REQ,
    NO_METHOD,
    PARSE,
    error_of,
)
from tests.utils import DaemonProc

# The shared daemon and its health check (fixtures), bound here so pytest uses them
# for this module: one daemon for the module, checked after every test.
shared = rpcfixtures.shared
still_serving = rpcfixtures.still_serving


# ---- the specification's examples ------------------------------------------------------


def test_call_with_named_params(start_daemon: Any) -> None:
    d = start_daemon()
    reply = one(
        d.root, {"jsonrpc": "2.0", "method": "daemon.stop", "params": {"fast": False}, "id": 3}
    )
    assert reply == {"jsonrpc": "2.0", "result": {"stopping": True, "pid": d.pid}, "id": 3}
    assert d.wait_exit() == 0


def test_spec_named_params_example_on_unknown_method(shared: DaemonProc) -> None:
    reply = one(
        shared.root,
        {
            "jsonrpc": "2.0",
            "method": "subtract",
            "params": {"subtrahend": 23, "minuend": 42},
            "id": 3,
        },
    )
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
    err = error_of(
        one(shared.root, {"jsonrpc": "2.0", "method": "foobar", "id": "1"}), NO_METHOD, "1"
    )
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
    data = (
        b'[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
        b'{"jsonrpc": "2.0", "method"]'
    )
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
    reply = one(
        shared.root, {"jsonrpc": "2.0", "method": "daemon.stop", "params": [True], "id": 10}
    )
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
