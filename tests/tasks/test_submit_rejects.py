"""Submissions that could never run are refused at submit with -32602, nothing stored.

Issue 8: a lone surrogate in a command, env, prompt or cwd, an env entry or argument too
large for exec, a cwd of `~nosuchuser` or with a NUL were stored (and failed later) or
answered -32603 with a traceback. Each must be a -32602 whose message names the field.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from aiwgd.client import RpcError
from tests.taskhelp import task_config
from tests.utils import DaemonProc, daemon_in_tmp

# 140,000 bytes in 70,000 characters: over Linux's MAX_ARG_STRLEN (131072 bytes with
# the NUL), which counts bytes, though short enough as a string for any generic bound.
BIG = "\u00e9" * 70_000
OK = [sys.executable, "-c", "pass"]

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("surrogate in command", {"command": [*OK, "a\ud800b"]}, "command[3]", "lone surrogate"),
    ("surrogate as program", {"command": ["\udcff"]}, "command[0]", "lone surrogate"),
    ("surrogate in prompt", {"prompt": "fix \udc80 this"}, "prompt", "lone surrogate"),
    ("surrogate in env value", {"command": OK, "env": {"K": "v\ud800"}}, "env.K", "surrogate"),
    ("surrogate in env name", {"command": OK, "env": {"K\udc81": "v"}}, "env", "surrogate"),
    ("surrogate in cwd", {"command": OK, "cwd": "sub\ud800"}, "cwd", "lone surrogate"),
    ("surrogate in agent", {"prompt": "hi", "agent": "a\ud800"}, "agent", "lone surrogate"),
    ("surrogate in metadata", {"command": OK, "metadata": {"k": ["\ud800"]}}, "metadata", "surr"),
    ("env value too large", {"command": OK, "env": {"BIG": BIG}}, "env.BIG", "131071"),
    ("argument too large", {"command": [*OK, BIG]}, "command[3]", "131071"),
    ("cwd of an unknown user", {"command": OK, "cwd": "~nosuchuser8"}, "cwd", "nosuchuser8"),
    ("cwd with NUL", {"command": OK, "cwd": "a\x00b"}, "cwd", "NUL"),
]


@pytest.fixture(scope="module")
def d() -> Iterator[DaemonProc]:
    with daemon_in_tmp(task_config()) as proc:
        yield proc


def journal_text(d: DaemonProc) -> str:
    path = d.paths.tasks_journal
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.mark.parametrize(
    ("params", "field", "why"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refused_at_submit_nothing_stored(
    d: DaemonProc, params: dict[str, Any], field: str, why: str
) -> None:
    before = d.call("task.stats")["stored"]
    journal = journal_text(d)
    with pytest.raises(RpcError) as info:
        d.call("task.submit", **params)
    err = info.value
    assert err.code == -32602, err.message
    assert f"{field}:" in err.message or f"{field}." in err.message, err.message
    assert why in err.message, err.message
    assert "Traceback" not in err.message and len(err.message) < 600
    assert d.call("task.stats")["stored"] == before
    assert journal_text(d) == journal  # not one line written


def test_environment_too_large_for_exec_is_refused(tmp_path_factory: Any) -> None:
    # Every entry fits on its own; together they pass the kernel's ARG_MAX.
    cfg = task_config(daemon={"max_request_bytes": 8 * 1_048_576})
    env = {f"V{i}": "y" * 120_000 for i in range(20)}
    with daemon_in_tmp(cfg) as d:
        with pytest.raises(RpcError) as info:
            d.call("task.submit", command=OK, env=env)
        assert info.value.code == -32602
        assert "ARG_MAX" in info.value.message and "env" in info.value.message
        assert d.call("task.stats")["stored"] == 0


def test_good_task_still_runs(d: DaemonProc) -> None:
    # Non-BMP characters are fine: only lone surrogates can never be encoded.
    task = d.call("task.submit", command=[*OK, "\U0001f600 ok"], env={"K": "v\u00e9"})
    done = d.call("task.wait", id=task["id"], timeout_s=20)
    assert done["state"] == "completed"
