"""Every number and string a method takes is bounded before use (issue 8).

A 400-digit `timeout_s` or `since`, an `offset` >= 2^63 once reached arithmetic (float(),
islice, seek) and answered -32603 with a traceback in the log. Validation now bounds
every number (finite, within +-(2^53 - 1), the integers every JSON peer holds exactly)
and every string, so each gets -32602 naming the param. The sweep below walks
`rpc.discover`, so a method added later is covered without editing this file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import rpcfixtures
from tests.rawrpc import one
from tests.rpcfixtures import BAD_PARAMS, error_of
from tests.utils import DaemonProc

shared = rpcfixtures.shared
still_serving = rpcfixtures.still_serving

HUGE = 10**400  # a legal JSON integer literal (under the decoder's 4300 digits)
# Methods that act on the daemon itself; their params hold no numbers anyway.
SKIP = {"daemon.stop", "daemon.reload"}


def call_raw(root: Path, method: str, params: dict[str, Any]) -> Any:
    # json.dumps writes 10**400 as its digits: the request carries the literal.
    line = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 7})
    return one(root, line.encode())


@pytest.fixture
def log_unchanged(shared: DaemonProc) -> Iterator[None]:
    """The daemon's log gains no traceback (no -32603 path was taken) during the test."""
    path = shared.paths.log_file
    start = path.stat().st_size if path.exists() else 0
    yield
    with path.open("rb") as fh:
        fh.seek(start)
        new = fh.read().decode(errors="replace")
    assert "Traceback" not in new and "exc_info" not in new, new[-3000:]


def invalid_param(reply: Any, name: str) -> str:
    assert reply.get("error", {}).get("code") == BAD_PARAMS, str(reply)[:300]
    err = error_of(reply, BAD_PARAMS, 7)
    assert name in err["message"], err
    assert name in " ".join(err["data"]["errors"]), err
    return str(err["message"])


@pytest.fixture(scope="module")
def task_id(shared: DaemonProc) -> str:
    task = shared.call("task.submit", command=["true"])
    shared.call("task.wait", id=task["id"], timeout_s=10)
    return str(task["id"])


@pytest.mark.parametrize(
    ("method", "params", "name"),
    [
        ("task.wait", {"id": "nosuch", "timeout_s": HUGE}, "timeout_s"),
        ("task.submit", {"command": ["true"], "timeout_s": HUGE}, "timeout_s"),
        ("events.list", {"since": HUGE}, "since"),
        ("events.list", {"since": -HUGE}, "since"),
        ("task.list", {"offset": 2**63}, "offset"),
        ("task.list", {"offset": 2**63 - 1}, "offset"),
        ("task.logs", {"offset": 2**63}, "offset"),
        ("automation.test", {"event": {"type": "x.y", "time": HUGE}}, "event.time"),
    ],
)
def test_the_reported_params_get_invalid_params_naming_them(
    shared: DaemonProc,
    task_id: str,
    log_unchanged: None,
    method: str,
    params: dict[str, Any],
    name: str,
) -> None:
    if method == "task.logs":
        params = {**params, "id": task_id}  # a real task: the offset reaches seek()
    message = invalid_param(call_raw(shared.root, method, params), name)
    assert "out of range" in message
    assert len(message) < 400, "a huge value is cut in the message"


# ---- a sweep over every param rpc.discover declares ---------------------------------------


def _types(schema: dict[str, Any]) -> set[str]:
    out = {schema["type"]} if isinstance(schema.get("type"), str) else set()
    for sub in schema.get("anyOf", []):
        out |= _types(sub)
    return out


def _dummy(schema: dict[str, Any]) -> Any:
    """A value of the right JSON type for a required param (it need not be meaningful)."""
    kinds = _types(schema)
    if "object" in kinds:
        props = schema.get("properties", {})
        return {k: _dummy(props[k]) for k in schema.get("required", [])}
    if "array" in kinds:
        return [_dummy(schema.get("items", {"type": "string"}))]
    if "string" in kinds:
        return "x.y"
    if "integer" in kinds or "number" in kinds:
        return 1
    return None


def _leaves(name: str, schema: dict[str, Any]) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """(path, schema) of every scalar a param holds, nested objects included."""
    for sub in [schema, *schema.get("anyOf", [])]:
        if sub.get("type") == "object" and "properties" in sub:
            for key, inner in sub["properties"].items():
                for path, leaf in _leaves(key, inner):
                    yield [name, *path], leaf
            return
    yield [name], schema


def _cases(doc: dict[str, Any], kind: set[str]) -> list[tuple[str, dict[str, Any], str]]:
    """(method, params, dotted param path) for every leaf param of a JSON type in `kind`."""
    out = []
    for m in doc["methods"]:
        if m["name"] in SKIP:
            continue
        base = {p["name"]: _dummy(p["schema"]) for p in m["params"] if p["required"]}
        for p in m["params"]:
            for path, leaf in _leaves(p["name"], p["schema"]):
                if _types(leaf) & kind:
                    out.append((m["name"], base, ".".join(path)))
    return out


@pytest.fixture(scope="module")
def doc(shared: DaemonProc) -> dict[str, Any]:
    result: dict[str, Any] = shared.call("rpc.discover")
    return result


def _with(params: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(params))
    keys = path.split(".")
    where = out
    for key in keys[:-1]:
        where = where.setdefault(key, {})
    where[keys[-1]] = value
    return out


def test_the_sweep_found_the_params(doc: dict[str, Any]) -> None:
    paths = {(m, p) for m, _, p in _cases(doc, {"integer", "number"})}
    assert {("task.list", "offset"), ("events.list", "since"), ("task.wait", "timeout_s")} <= paths
    assert ("automation.test", "event.time") in paths
    assert ("events.list", "source") in {(m, p) for m, _, p in _cases(doc, {"string"})}


@pytest.mark.parametrize(
    "value",
    [HUGE, -HUGE, 2**63, -(2**63) - 1, 1e308, -1e308],
    ids=["10^400", "-10^400", "2^63", "-2^63-1", "1e308", "-1e308"],
)
def test_every_number_is_bounded(
    shared: DaemonProc, doc: dict[str, Any], log_unchanged: None, value: Any
) -> None:
    for method, base, path in _cases(doc, {"integer", "number"}):
        reply = call_raw(shared.root, method, _with(base, path, value))
        assert "error" in reply, (method, path, str(reply)[:300])
        message = invalid_param(reply, path.split(".")[-1])
        assert "out of range" in message or "is not" in message, (method, path, message)


def test_every_string_is_bounded(
    shared: DaemonProc, doc: dict[str, Any], log_unchanged: None
) -> None:
    long = "a" * 200_000  # well inside the 1 MiB line limit
    for method, base, path in _cases(doc, {"string"}):
        reply = call_raw(shared.root, method, _with(base, path, long))
        assert "error" in reply, (method, path, str(reply)[:300])
        message = invalid_param(reply, path.split(".")[-1])
        assert "too long" in message or "is not" in message, (method, path, message[:300])


@pytest.mark.parametrize(
    ("method", "params", "name"),
    [
        ("events.list", {"type": "a" * 201}, "type"),
        ("events.subscribe", {"types": ["task.*", "b" * 201]}, "types[1]"),
        ("events.emit", {"type": "c." + "c" * 199}, "type"),
    ],
)
def test_event_types_and_globs_are_short(
    shared: DaemonProc, log_unchanged: None, method: str, params: dict[str, Any], name: str
) -> None:
    # A glob is compiled and cached by fnmatch: a long one would stay in memory.
    message = invalid_param(call_raw(shared.root, method, params), name)
    assert "at most 200" in message
