"""Fixtures and helpers shared by the socket-level RPC tests.

`shared` and `still_serving` are pytest fixtures. A test module that wants them binds
them as module globals (`shared = rpcfixtures.shared`): pytest finds fixtures in a test
module's namespace, so only those modules use them and each gets its own daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.rawrpc import one, req
from tests.utils import DaemonProc, daemon_in_tmp

PARSE, INVALID_REQ, NO_METHOD, BAD_PARAMS = -32700, -32600, -32601, -32602
LIMIT_EXCEEDED, FORBIDDEN = -32004, -32005


@pytest.fixture(scope="module")
def shared() -> Iterator[DaemonProc]:
    """One daemon for a module of read-only tests (each test leaves it healthy).

    A test module binds this fixture (with `still_serving`) to get its own daemon.
    """
    with daemon_in_tmp() as d:
        yield d


@pytest.fixture(autouse=True)
def still_serving(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test on the shared daemon: same process, still answering."""
    yield
    if "shared" in request.fixturenames:
        d: DaemonProc = request.getfixturevalue("shared")
        assert d.proc is not None and d.proc.poll() is None, d.stderr()
        assert one(d.root, req("ping", "after")) == {
            "jsonrpc": "2.0",
            "result": "pong",
            "id": "after",
        }


def error_of(reply: Any, code: int, id_: Any = None) -> dict[str, Any]:
    assert isinstance(reply, dict), reply
    assert set(reply) == {"jsonrpc", "error", "id"}, reply
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == id_, reply
    assert reply["error"]["code"] == code, reply
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    err: dict[str, Any] = reply["error"]
    return err
