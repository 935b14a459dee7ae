"""The options `aiwg task submit` and `aiwg task run` share, and the task.submit params
they make (queue options: taskqueue.py). Light: `aiwg task ...` imports it at start.
"""

from __future__ import annotations

import math
import os
from enum import StrEnum
from typing import Annotated, Any

import typer

from aiwgd.cli.options import UsageError

Agent = Annotated[str | None, typer.Option("--agent", "-a", help="named agent")]
Priority = Annotated[
    str | None, typer.Option("--priority", "-p", help="integer or low|normal|high|critical")
]
Timeout = Annotated[float | None, typer.Option("--timeout", help="seconds before timed_out")]
Cwd = Annotated[str | None, typer.Option("--cwd", help="working dir (default: project root)")]
Env = Annotated[list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE (repeatable)")]
Retries = Annotated[int, typer.Option("--retries", min=0, help="retries if it fails")]
Limit = Annotated[
    list[str] | None,
    typer.Option(
        "--limit",
        metavar="KEY=VALUE",
        help="a resource limit (repeatable): memory_mb, cpu_percent, cpu_window_s, "
        "max_runtime_s, max_fds, no_output_s",
    ),
]
Wait = Annotated[
    bool, typer.Option("--wait", "-w", help="wait for the end; exit 1 unless completed")
]
Follow = Annotated[bool, typer.Option("--follow", "-f", help="stream the output until the end")]


class Isolate(StrEnum):
    worktree = "worktree"
    none = "none"


IsolateOpt = Annotated[
    Isolate | None,
    typer.Option(
        "--isolate", help="worktree: run in a new git worktree of the project (agent.isolate)"
    ),
]
Base = Annotated[
    str | None, typer.Option("--base", help="git revision the worktree starts from (HEAD)")
]


class OnInterrupt(StrEnum):
    requeue = "requeue"
    fail = "fail"


Interrupt = Annotated[
    OnInterrupt | None,
    typer.Option(
        "--on-interrupt",
        help="if a daemon stop cuts it short: requeue (uses a retry) or fail "
        "(default: tasks.on_interrupt; prompts fail, commands requeue)",
    ),
]


def _priority(value: str | None) -> int | str | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value  # a name; the daemon says precisely what is allowed


def _env(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--env {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            number: int | float = kind(text)
        except ValueError:
            continue
        # inf/nan have no JSON form: sent as text, the daemon refuses them by key path
        return number if math.isfinite(number) else text
    return text  # not a number: the daemon says what the key takes


def _limits(items: list[str]) -> dict[str, int | float | str]:
    """`--limit KEY=VALUE`s as task.submit's `limits`. Only the shape is checked here:
    the daemon validates keys and ranges and names the key path (limits.memory_mb)."""
    out: dict[str, int | float | str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"--limit {item!r}: expected KEY=VALUE, e.g. memory_mb=500")
        out[key.strip()] = _number(value.strip())
    return out


def submit_spec(
    agent: str | None,
    priority: str | None,
    timeout: float | None,
    cwd: str | None,
    env: list[str] | None,
    retries: int,
    on_interrupt: OnInterrupt | None = None,
    limits: list[str] | None = None,
    isolate: Isolate | None = None,
    base: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": "cli"}
    if isolate is not None:
        spec["isolate"] = isolate.value
    if base is not None:
        spec["base"] = base
    if limits:
        spec["limits"] = _limits(limits)
    if on_interrupt is not None:
        spec["on_interrupt"] = on_interrupt.value
    if agent:
        spec["agent"] = agent
    prio = _priority(priority)
    if prio is not None:
        spec["priority"] = prio
    if timeout is not None:
        spec["timeout_s"] = timeout
    if cwd:
        spec["cwd"] = os.path.abspath(cwd)  # relative to where the user is, not the root
    if env:
        spec["env"] = _env(env)
    if retries:
        spec["max_retries"] = retries
    return spec
