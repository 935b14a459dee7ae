"""What a task submission may say, and turning a valid one into a Task.

One params dataclass (`SubmitParams`) serves both the RPC method `task.submit` (the Api
registry validates types, ranges and unknown keys with it) and the public
`Supervisor.submit(spec, source)` used by automation and the scheduler. `prepare()`
adds the checks a schema cannot make: exactly one of prompt/command, the cwd exists
and lies inside an allowed root (symlinks resolved), the executable exists on the
task's PATH and is allowed by `agent.allowed_commands`. Every failure raises before
anything is stored.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiwgd import errors
from aiwgd.config import Config
from aiwgd.config.schema import ValidationError, parse, show, spec
from aiwgd.tasks.model import PRIORITIES, SOURCES, Task, parse_priority

# Linux caps one argv element at MAX_ARG_STRLEN (32 pages = 128 KiB, with its NUL): a
# prompt goes to the agent as one argument, so a longer one could never start.
MAX_PROMPT_BYTES = 131_071
MAX_METADATA_BYTES = 64 * 1024
MAX_TIMEOUT_S = 7 * 86_400
_PLACEHOLDER = re.compile(r"\{prompt\}|\{agent\}")


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
    max_retries: int = spec(0, ge=0, le=100, doc="retries for failed / timed out runs")
    metadata: dict[str, Any] = spec(factory=dict, check=_metadata, doc="kept with the task")
    source: str | None = spec(None, choices=SOURCES, doc="who submitted it (default: rpc)")


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


@functools.cache
def _daemon_env() -> dict[str, str]:
    # Copied once: the daemon never changes its own environment, and decoding all of
    # os.environ per task is a measurable share of a short task's cost.
    return dict(os.environ)


def child_env(config: Config, task_env: dict[str, str]) -> dict[str, str]:
    """The environment a task runs with: the daemon's, agent.env, then the task's own."""
    env = dict(_daemon_env())
    env.update(config.agent.env)
    env.update(task_env)
    return env


def agent_argv(config: Config, prompt: str, agent: str | None) -> list[str]:
    """agent.command with {prompt}/{agent} replaced per element (never via a shell)."""

    values = {"{prompt}": prompt, "{agent}": agent or ""}

    def sub(item: str) -> str:
        # One pass: a prompt that itself contains "{agent}" is never substituted again.
        return _PLACEHOLDER.sub(lambda m: values[m.group(0)], item)

    argv = [sub(a) for a in config.agent.command]
    if agent:
        argv += [sub(a) for a in config.agent.agent_args]
    return argv


def task_argv(config: Config, task: Task) -> list[str]:
    if task.command is not None:
        return list(task.command)
    return agent_argv(config, task.prompt or "", task.agent)


def _resolve_cwd(raw: str | None, root: Path, config: Config) -> str:
    if raw is None:
        return str(root)  # the daemon's root: already resolved, and it exists
    base = Path(raw).expanduser() if raw else root
    if not base.is_absolute():
        base = root / base
    try:
        cwd = base.resolve(strict=True)
    except (OSError, RuntimeError):
        raise invalid([f"cwd: {show(raw)} does not exist"]) from None
    if not cwd.is_dir():
        raise invalid([f"cwd: {show(raw)} is not a directory"])
    roots = [root] + [Path(r).expanduser().resolve() for r in config.agent.allowed_roots]
    if not any(cwd == r or cwd.is_relative_to(r) for r in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise errors.Forbidden(
            f"cwd: {show(raw)} (resolved {cwd}) is outside the project root and "
            f"agent.allowed_roots (allowed: {allowed})",
            {"cwd": str(cwd), "allowed_roots": [str(r) for r in roots]},
        )
    return str(cwd)


def resolve_executable(name: str, cwd: str, env: dict[str, str]) -> str | None:
    """The file `name` would run as: a path (relative to the task cwd) or a PATH search."""
    if "/" in name:
        path = os.path.join(cwd, name)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return shutil.which(name, path=env.get("PATH", os.defpath))


def _check_allowed(name: str, resolved: str, patterns: list[str]) -> None:
    if not patterns:
        return
    base = os.path.basename(name)
    for pat in patterns:
        candidates = (name, resolved) if "/" in pat else (name, base)
        if any(fnmatch.fnmatchcase(c, pat) for c in candidates):
            return
    raise errors.Forbidden(
        f"command[0]: {show(name)} is not allowed (agent.allowed_commands: {', '.join(patterns)})",
        {"command": name, "allowed_commands": patterns},
    )


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
    if p.command is not None:
        bad = [i for i, a in enumerate(p.command) if "\0" in a]
        if bad:
            raise invalid([f"command[{bad[0]}]: contains a NUL character"])
        if not p.command[0]:
            raise invalid(["command[0]: must name a program"])
    cwd = _resolve_cwd(p.cwd, root, config)
    env = child_env(config, p.env)
    if p.command is not None:
        exe = resolve_executable(p.command[0], cwd, env)
        if exe is None:
            raise invalid(
                [
                    f"command[0]: {show(p.command[0])} is not an executable found "
                    f"on PATH or relative to cwd {cwd}"
                ]
            )
        _check_allowed(p.command[0], exe, config.agent.allowed_commands)
    else:
        argv = agent_argv(config, p.prompt or "", p.agent)
        if resolve_executable(argv[0], cwd, env) is None:
            raise errors.Unavailable(
                f"agent.command[0]: {show(argv[0])} is not an executable found on PATH; "
                "install the agent or set agent.command in the config",
                {"agent_command": argv[0]},
            )
    timeout = p.timeout_s or config.daemon.action_timeout_minutes * 60
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
        source=p.source or source,
        metadata=dict(p.metadata),
    )
