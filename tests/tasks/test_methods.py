"""task.* and chat.send over the real socket: every bad input of the issue, logs (and
follow), wait, list, get, cancel conflicts and the shutting-down error."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiwgd.client import Client, RpcError
from tests.conftest import DaemonFactory
from tests.rawrpc import Conn, req
from tests.taskhelp import prog, submit, task_config, wait_terminal
from tests.utils import DaemonProc, daemon_in_tmp

INVALID, NOT_FOUND, CONFLICT, SHUTTING_DOWN = -32602, -32001, -32002, -32003
LIMIT, FORBIDDEN = -32004, -32005


def rpc_error(d: DaemonProc, method: str, **params: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        d.call(method, **params)
    return info.value


def with_escape_routes(root: Path) -> None:
    """sub/ inside the root, and escape/: a symlink to a dir outside it (`{root}-outside`)."""
    (root / "sub").mkdir()
    outside = Path(f"{root}-outside")
    outside.mkdir()
    (root / "escape").symlink_to(outside)


@pytest.fixture(scope="module")
def shared() -> Iterator[DaemonProc]:
    """One daemon for the tests that do not restart it (much faster than one each)."""
    cfg = task_config(
        # The test interpreter is not on PATH: allowed by a glob over its resolved path.
        agent={"allowed_commands": [os.path.dirname(prog()[0]) + "/python*", "true", "/bin/e*"]}
    )
    cfg["daemon"]["max_request_bytes"] = 16 * 1024 * 1024
    with daemon_in_tmp(cfg, prepare=with_escape_routes) as d:
        yield d
    shutil.rmtree(f"{d.root}-outside", ignore_errors=True)


BAD_SUBMITS: list[tuple[str, dict[str, Any], int, str]] = [
    ("neither", {"priority": 1}, INVALID, 'exactly one of "prompt"'),
    ("both", {"prompt": "hi", "command": ["true"]}, INVALID, "not both"),
    ("string command", {"command": "ls -l"}, INVALID, 'command: "ls -l" is not a list'),
    ("empty command", {"command": []}, INVALID, "command: must have at least 1 items"),
    ("empty prompt", {"prompt": ""}, INVALID, "prompt: must have at least 1 characters"),
    (
        "unknown priority",
        {"command": ["true"], "priority": "urgent"},
        INVALID,
        'priority: "urgent" is not a priority (must be an integer or one of low, normal',
    ),
    ("bool priority", {"command": ["true"], "priority": True}, INVALID, "priority: true"),
    (
        "missing cwd",
        {"command": ["true"], "cwd": "/no/such/dir"},
        INVALID,
        'cwd: "/no/such/dir" does not exist',
    ),
    (
        "cwd outside root",
        {"command": ["true"], "cwd": "/"},
        FORBIDDEN,
        'cwd: "/" (resolved /) is outside the project root',
    ),
    ("cwd via symlink", {"command": ["true"], "cwd": "escape"}, FORBIDDEN, "is outside"),
    ("relative escape", {"command": ["true"], "cwd": "sub/../.."}, FORBIDDEN, "is outside"),
    (
        "disallowed command",
        {"command": ["ls"]},
        FORBIDDEN,
        'command[0]: "ls" is not allowed (agent.allowed_commands:',
    ),
    (
        "missing executable",
        {"command": ["no-such-program-xyz"]},
        INVALID,
        'command[0]: "no-such-program-xyz" is not an executable found on PATH',
    ),
    ("unknown key", {"command": ["true"], "shell": True}, INVALID, "shell: unknown key"),
    ("bad env", {"command": ["true"], "env": {"A=B": "1"}}, INVALID, "env: "),
    ("env not strings", {"command": ["true"], "env": {"A": 1}}, INVALID, "env.A: 1 is not"),
    ("negative timeout", {"command": ["true"], "timeout_s": -1}, INVALID, "timeout_s: -1"),
    ("retries", {"command": ["true"], "max_retries": -1}, INVALID, "max_retries: -1"),
    ("metadata", {"command": ["true"], "metadata": [1]}, INVALID, "metadata: [1] is not"),
    ("NUL in argv", {"command": ["true", "a\0b"]}, INVALID, "command[1]: contains a NUL"),
    (
        "big prompt",
        {"prompt": "x" * 200_000},
        INVALID,
        "... is too long (200000 bytes, at most 131071",
    ),
    ("source", {"command": ["true"], "source": "evil"}, INVALID, 'source: "evil" is not allowed'),
]


@pytest.mark.parametrize("case", BAD_SUBMITS, ids=[c[0] for c in BAD_SUBMITS])
def test_bad_submit_is_precise_and_stores_nothing(
    shared: DaemonProc, case: tuple[str, dict[str, Any], int, str]
) -> None:
    _name, params, code, text = case
    before = shared.call("task.stats")["stored"]
    err = rpc_error(shared, "task.submit", **params)
    assert err.code == code, err
    assert text in err.message, err.message
    assert shared.call("task.stats")["stored"] == before  # nothing stored half-way
    assert shared.call("ping") == "pong"


def test_ten_megabyte_prompt(start_daemon: DaemonFactory) -> None:
    d = start_daemon(task_config())
    # Over the default 1 MiB line limit: refused before parsing, connection closed.
    with Conn(d.root) as c:
        body = json.dumps(req("task.submit", prompt="x" * 10_000_000)).encode() + b"\n"
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            c.send(body)
        err = json.loads(c.line())["error"]
        assert err["code"] == LIMIT and "request line is over 1048576 bytes" in err["message"]
    assert d.call("task.list")["total"] == 0 and d.call("ping") == "pong"


def test_ten_megabyte_prompt_under_a_raised_line_limit(shared: DaemonProc) -> None:
    with Client(shared.root, timeout=20) as c, pytest.raises(RpcError) as info:
        c.call("task.submit", prompt="x" * 10_000_000)
    assert info.value.code == INVALID
    assert "... is too long (10000000 bytes, at most 131071" in info.value.message


def test_submit_get_list_logs_wait(shared: DaemonProc) -> None:
    task = submit(
        shared,
        prog("--say", "hello"),
        priority="high",
        metadata={"k": [1]},
        cwd="sub",
        env={"FOO": "bar"},
    )
    assert task["state"] == "queued" and task["priority"] == 10
    assert task["cwd"] == str(shared.root / "sub") and task["source"] == "rpc"
    done = shared.call("task.wait", id=task["id"], timeout_s=20)
    assert done["state"] == "completed" and done["output_tail"] == "hello\n"
    assert done["metadata"] == {"k": [1]} and done["env"] == {"FOO": "<redacted>"}
    listed = shared.call("task.list", state="completed", limit=1)
    assert listed["tasks"][0]["id"] == task["id"]  # newest first
    assert "output_tail" not in listed["tasks"][0]  # summaries only
    total = shared.call("task.stats")["counts"]["completed"]
    assert listed["total"] == total and listed["limit"] == 1
    assert shared.call("task.list", state="completed", offset=total)["tasks"] == []
    assert shared.call("task.list", source="chat", state="failed")["total"] == 0
    logs = shared.call("task.logs", id=task["id"])
    assert logs["data"] == "hello\n" and logs["eof"] and logs["size"] == 6
    part = shared.call("task.logs", id=task["id"], offset=2, limit=2)
    assert part["data"] == "ll" and part["next_offset"] == 4 and not part["eof"]
    # task.wait answers at its timeout with the task as it is.
    slow = submit(shared, prog("--sleep", "30"))
    assert shared.call("task.wait", id=slow["id"], timeout_s=0.2)["state"] in ("queued", "running")
    shared.call("task.cancel", id=slow["id"])


def test_follow_streams_notifications_until_the_end(shared: DaemonProc) -> None:
    gate = shared.root / "gate"
    task = submit(shared, prog("--say", "first", "--gate", str(gate), "--say", "second"))
    got: list[dict[str, Any]] = []

    def on_note(note: dict[str, Any]) -> None:
        got.append(note)
        # Chunks come as the child writes them; "first" may arrive in pieces.
        if "".join(n["params"]["data"] for n in got) == "first\n":
            gate.touch()  # only now may the task go on and end

    with Client(shared.root, timeout=20) as c:
        result = c.stream("task.logs", on_note, id=task["id"], follow=True)
    assert [n["method"] for n in got] == ["task.output"] * len(got)
    assert "".join(n["params"]["data"] for n in got) == "first\nsecond\n"
    assert got[0]["params"]["offset"] == 0 and got[0]["params"]["id"] == task["id"]
    offsets = [n["params"]["offset"] for n in got]
    assert offsets == sorted(offsets) and offsets[-1] < 13
    assert result["state"] == "completed" and result["eof"] and result["next_offset"] == 13


def test_not_found_and_conflict(shared: DaemonProc) -> None:
    for method in ("task.get", "task.cancel", "task.logs", "task.wait"):
        err = rpc_error(shared, method, id="nope")
        assert err.code == NOT_FOUND and "no task with id 'nope'" in err.message
    done = wait_terminal(shared, submit(shared, ["true"])["id"])
    err = rpc_error(shared, "task.cancel", id=done["id"])
    assert err.code == CONFLICT and "is already completed" in err.message
    assert rpc_error(shared, "task.list", state="weird").code == INVALID
    assert rpc_error(shared, "task.list", limit=0).code == INVALID


def test_chat_send_runs_the_agent_with_substitution(shared: DaemonProc) -> None:
    chat = shared.call("chat.send", message="hi {agent} there", agent="reviewer")
    assert chat["source"] == "chat" and chat["priority"] == 0 and chat["agent"] == "reviewer"
    done = wait_terminal(shared, chat["id"])
    # Per element: {prompt} replaced, agent_args appended only because an agent is named.
    assert done["output_tail"] == "hi {agent} there\nagent=reviewer\n"
    prompt = wait_terminal(shared, submit_prompt(shared, "plain"))
    assert prompt["output_tail"] == "plain\n"
    echo = shared.call("task.submit", command=["/bin/echo", "a b", "$HOME", "{prompt}"])
    assert wait_terminal(shared, echo["id"])["output_tail"] == "a b $HOME {prompt}\n"


def submit_prompt(d: DaemonProc, prompt: str) -> str:
    task_id: str = d.call("task.submit", prompt=prompt)["id"]
    return task_id


def test_agent_args_reach_the_agent(start_daemon: DaemonFactory) -> None:
    d = start_daemon(
        task_config(
            agent={
                "command": [*prog(), "--echo-args", "-p", "{prompt}"],
                "agent_args": ["--agent", "{agent}"],
            }
        )
    )
    named = wait_terminal(d, d.call("task.submit", prompt="do it", agent="rev")["id"])
    assert json.loads(named["output_tail"]) == ["-p", "do it", "--agent", "rev"]
    plain = wait_terminal(d, d.call("task.submit", prompt="do 'it' $X")["id"])
    assert json.loads(plain["output_tail"]) == ["-p", "do 'it' $X"]


def test_missing_agent_program_is_unavailable(start_daemon: DaemonFactory) -> None:
    d = start_daemon(task_config(agent={"command": ["no-such-agent-xyz", "{prompt}"]}))
    err = rpc_error(d, "chat.send", message="hello")
    assert err.code == -32007 and '"no-such-agent-xyz" is not an executable' in err.message


def test_shutting_down_refuses_new_tasks(start_daemon: DaemonFactory) -> None:
    d = start_daemon(task_config())
    with Client(d.root) as c:
        stop, sub = c.batch([("daemon.stop", {}), ("task.submit", {"command": ["true"]})])
    assert stop["stopping"] is True
    assert isinstance(sub, RpcError) and sub.code == SHUTTING_DOWN
    assert "shutting down" in sub.message
    assert d.wait_exit() == 0


def test_discover_lists_task_methods(shared: DaemonProc) -> None:
    names = {m["name"] for m in shared.call("rpc.discover")["methods"]}
    assert {
        "task.submit",
        "task.get",
        "task.list",
        "task.cancel",
        "task.stats",
        "task.logs",
        "task.wait",
        "chat.send",
    } <= names
