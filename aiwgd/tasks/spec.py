"""What a task submission may say, and turning a valid one into a Task.

One params dataclass (`SubmitParams`) serves both the RPC method `task.submit` (the Api
registry validates types, ranges and unknown keys with it) and the public
`Supervisor.submit(spec, source)` used by automation and the scheduler. `prepare()`
adds the checks a schema cannot make: exactly one of prompt/command, nothing no
program could be started with (lone surrogates, arguments or env entries over the
kernel's limits), the cwd exists and lies inside an allowed root (symlinks resolved),
the program exists and is allowed by `agent.allowed_commands` (aiwgd.tasks.policy
says how). Every failure raises before anything is stored.

`spawn_plan()` checks a task again right before it starts (the executor calls it) and
says what exactly to run: the program's absolute path (so the task's own PATH never
picks it) and the cwd resolved now (so a directory swapped for a symlink is caught).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiwgd import errors
from aiwgd.config import Config
from aiwgd.config.limits import Limits
from aiwgd.config.schema import ValidationError, dump, parse, show, spec
from aiwgd.tasks.executors.choice import choose_executor
from aiwgd.tasks.launch import agent_argv, program
from aiwgd.tasks.model import (
    ENV_REDACTED,
    ON_INTERRUPT,
    PRIORITIES,
    SOURCES,
    Task,
    parse_priority,
)
from aiwgd.tasks.policy import Refused, arg_max, check_allowed, child_env, exec_size, resolve_cwd

__all__ = ["ChatParams", "SubmitParams", "invalid", "parse_spec", "prepare"]

# Linux caps one argv element or environment entry at MAX_ARG_STRLEN (32 pages =
# 128 KiB, with its NUL): a prompt goes to the agent as one argument, so a longer one
# could never start, and neither could a longer command argument or NAME=value.
MAX_ARG_BYTES = 131_071
MAX_PROMPT_BYTES = MAX_ARG_BYTES
# Room in the ARG_MAX check for what the executor adds (AIWG_TASK_ID, AIWG_ROOT).
_EXEC_SLACK = 4096
MAX_METADATA_BYTES = 64 * 1024
MAX_TIMEOUT_S = 7 * 86_400


def _priority(value: int | str) -> str | None:
    try:
        parse_priority(value)
    except ValueError:
        return f"is not a priority (must be an integer or one of {', '.join(PRIORITIES)})"
    return None


def _env(value: dict[str, str]) -> str | None:
    for key, val in value.items():
        if not key or "=" in key or "\0" in key or "\0" in val:
            return f"has a bad entry {key!r} (names must be non-empty, without = or NUL)"
    return None


def _metadata(value: dict[str, Any]) -> str | None:
    size = len(json.dumps(value, default=str).encode())
    if size > MAX_METADATA_BYTES:
        return f"is too large ({size} bytes encoded, at most {MAX_METADATA_BYTES})"
    return None


def _prompt(value: str) -> str | None:
    size = len(value.encode("utf-8", errors="surrogatepass"))
    if size > MAX_PROMPT_BYTES:
        return (
            f"is too long ({size} bytes, at most {MAX_PROMPT_BYTES}: it is passed to "
            "the agent as one command-line argument)"
        )
    if "\0" in value:
        return "contains a NUL character"
    return None


def _name(value: str) -> str | None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains a control character (names are one line of text)"
    return _surrogate(value)


@dataclass
class SubmitParams:
    prompt: str | None = spec(None, min_len=1, check=_prompt, doc="an agent prompt")
    command: list[str] | None = spec(
        None, min_len=1, doc='an argv list run without a shell, e.g. ["make", "test"]'
    )
    agent: str | None = spec(None, min_len=1, max_len=200, doc="named agent (agent_args)")
    priority: int | str = spec(
        0, check=_priority, doc="integer, higher first; or low|normal|high|critical"
    )
    cwd: str | None = spec(None, min_len=1, doc="working dir (default: the project root)")
    env: dict[str, str] = spec(factory=dict, check=_env, doc="extra environment variables")
    timeout_s: float | None = spec(
        None, gt=0, le=MAX_TIMEOUT_S, doc="default: daemon.action_timeout_minutes"
    )
    max_retries: int = spec(
        0, ge=0, le=100, doc="retries for failed / timed out / requeued interrupted runs"
    )
    on_interrupt: str | None = spec(
        None,
        choices=ON_INTERRUPT,
        doc="if a daemon stop or crash cuts it short: requeue (using a retry) or fail; "
        "default: tasks.on_interrupt (prompt: fail, command: requeue)",
    )
    metadata: dict[str, Any] = spec(factory=dict, check=_metadata, doc="kept with the task")
    source: str | None = spec(None, choices=SOURCES, doc="who submitted it (default: rpc)")
    limits: Limits | None = spec(
        None,
        doc="resource limits (memory_mb, cpu_percent, max_runtime_s, max_fds, no_output_s); "
        "over one the task is killed and fails (default for prompts: agent.limits)",
    )
    isolate: str | None = spec(
        None,
        choices=("worktree", "none"),
        doc='"worktree": run in a new git worktree of the project, on branch '
        "<agent.worktree_prefix><task-id> (default for prompts: agent.isolate)",
    )
    base: str | None = spec(
        None, min_len=1, max_len=256, doc="git revision an isolated task starts from (HEAD)"
    )
    resume: str | None = spec(
        None,
        min_len=1,
        max_len=64,
        doc="id of an earlier prompt task: continue its agent session (agent.resume_args), "
        "in its worktree if it had one",
    )
    # Queue control, checked further by aiwgd.tasks.gates.Gates.admit.
    name: str | None = spec(None, min_len=1, max_len=200, check=_name, doc="a name for people")
    after: list[str] | None = spec(
        None, doc="ids of tasks that must complete first (else: dependency_failed)"
    )
    run_at: str | None = spec(
        None, min_len=1, max_len=64, doc="ISO 8601 time to start at (no zone: local time)"
    )
    delay_s: float | None = spec(None, ge=0, le=MAX_TIMEOUT_S * 52, doc="start after this long")
    group: str | None = spec(None, min_len=1, max_len=200, doc="a group of tasks.groups")
    executor: str | None = spec(
        None,
        min_len=1,
        max_len=64,
        doc='where it runs: "local" (this daemon) or a name of config executors '
        "(default: its group's, agent.executor for prompts, tasks.default_executor)",
    )


@dataclass
class ChatParams:
    message: str = spec(min_len=1, check=_prompt, doc="the prompt for the agent")
    agent: str | None = spec(None, min_len=1, max_len=200)


def invalid(issues: list[str]) -> errors.InvalidParams:
    return errors.InvalidParams("Invalid params: " + "; ".join(issues), {"errors": issues})


def parse_spec(data: Any) -> SubmitParams:
    """Validate a submission given as a dict (the path automation and schedules take)."""
    if not isinstance(data, dict):
        raise invalid([f"{show(data)} is not an object of task fields"])
    try:
        result: SubmitParams = parse(SubmitParams, data)
    except ValidationError as exc:
        raise invalid([str(i) for i in exc.issues]) from None
    return result


# ---- what could never run ------------------------------------------------------------


def _surrogate(text: str) -> str | None:
    """Why `text` cannot be encoded for a program (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = text[exc.start]
        return (
            f"contains a lone surrogate (U+{ord(char):04X} at character {exc.start}), which "
            "is not text and cannot be encoded as UTF-8; send valid Unicode"
        )
    return None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, text) for every string inside `value`, keys of objects included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield path, key
                yield from _strings(item, f"{path}.{key}")


def unrunnable(p: SubmitParams) -> list[str]:
    """What in a submission no program could ever be started with (nothing is stored)."""
    issues: list[str] = []
    for name in ("prompt", "command", "agent", "cwd", "priority", "env", "metadata"):
        for path, text in _strings(getattr(p, name), name):
            reason = _surrogate(text)
            if reason:
                issues.append(f"{path}: {show(text)} {reason}")
    if issues:
        return issues  # the sizes below need encodable text
    for i, arg in enumerate(p.command or []):
        size = len(arg.encode())
        if size > MAX_ARG_BYTES:
            issues.append(
                f"command[{i}]: is too long ({size} bytes; one argument can be at most "
                f"{MAX_ARG_BYTES} bytes on Linux)"
            )
    for key, val in p.env.items():
        size = len(key.encode()) + 1 + len(val.encode())
        if size > MAX_ARG_BYTES:
            issues.append(
                f"env.{key}: is too large ({size} bytes as NAME=value; one environment "
                f"entry can be at most {MAX_ARG_BYTES} bytes on Linux)"
            )
        if val == ENV_REDACTED:
            issues.append(
                f"env.{key}: {show(val)} is reserved: it is how stored tasks show a hidden "
                "value; send the real value"
            )
    if p.cwd is not None and "\0" in p.cwd:
        issues.append(f"cwd: {show(p.cwd)} contains a NUL character")
    return issues


# ---- at submit -----------------------------------------------------------------------


def prepare(p: SubmitParams, source: str, config: Config, root: Path, new_id: str) -> Task:
    """Check what the schema cannot and build the queued Task (nothing stored yet)."""
    if (p.prompt is None) == (p.command is None):
        which = "both" if p.prompt is not None else "neither"
        raise invalid(
            [
                f'a task needs exactly one of "prompt" (an agent prompt) or "command" '
                f"(an argv list), not {which}"
            ]
        )
    issues = unrunnable(p)
    if issues:
        raise invalid(issues)
    if p.command is not None:
        bad = [i for i, a in enumerate(p.command) if "\0" in a]
        if bad:
            raise invalid([f"command[{bad[0]}]: contains a NUL character"])
        if not p.command[0]:
            raise invalid(["command[0]: must name a program"])
    try:
        executor = choose_executor(config, p.executor, p.group, p.prompt is not None, bool(p.env))
    except ValueError as exc:
        raise invalid([str(exc)]) from None
    try:
        cwd = str(root) if p.cwd is None else resolve_cwd(p.cwd, root, config)
        if executor is not None:
            # Run elsewhere: its program is looked up, and allowed or not, on the worker
            # (its PATH, its own agent.allowed_commands), when the attempt starts there.
            argv = p.command or agent_argv(config, p.prompt or "", p.agent)
        elif p.command is not None:
            argv = list(p.command)
            argv[0] = program(argv[0], cwd, config, "command[0]")
            check_allowed(p.command[0], argv[0], config, root)
        else:
            argv = agent_argv(config, p.prompt or "", p.agent)
            argv[0] = program(argv[0], cwd, config, "agent.command[0]")
    except Refused as exc:
        raise _rpc_error(exc, agent=p.command is None) from None
    env = child_env(config, p.env)
    size, limit = exec_size(argv, env) + _EXEC_SLACK, arg_max()
    if size > limit:
        raise invalid(
            [
                f"env: the command line and environment come to {size} bytes, over the "
                f"system's ARG_MAX of {limit} bytes for starting a program; pass large "
                "values in a file instead"
            ]
        )
    timeout = p.timeout_s or config.daemon.action_timeout_minutes * 60
    policy = p.on_interrupt or config.tasks.interrupt_policy(prompt=p.prompt is not None)
    return Task(
        id=new_id,
        prompt=p.prompt,
        command=list(p.command) if p.command else None,
        agent=p.agent,
        priority=parse_priority(p.priority),
        cwd=cwd,
        env=dict(p.env),
        timeout_s=float(timeout),
        max_retries=p.max_retries,
        on_interrupt=ON_INTERRUPT[ON_INTERRUPT.index(policy)],  # one shared string
        source=p.source or source,
        metadata=dict(p.metadata),
        # Kept even when empty: `{}` says "no limits", overriding agent.limits.
        limits=None if p.limits is None else dump(p.limits),
        executor=executor,
    )


def _rpc_error(exc: Refused, agent: bool) -> errors.RpcError:
    if agent and "command" in exc.data:
        return errors.Unavailable(
            f"{exc}; install the agent or set agent.command in the config",
            {"agent_command": exc.data["command"]},
        )
    if exc.forbidden:
        return errors.Forbidden(str(exc), exc.data)
    return invalid([str(exc)])
