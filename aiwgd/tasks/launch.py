"""What an attempt runs: the argv (a command's own, or agent.command with the prompt and
agent put in), the program found and allowed again right before the spawn, the cwd as
it is now, and the resource limits it runs under. Read at each spawn, so a reload
applies to the next attempt; the worker of a remote executor uses the same pieces.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiwgd.config import Config
from aiwgd.config.limits import Limits
from aiwgd.config.schema import ValidationError, parse, show
from aiwgd.tasks.model import Task
from aiwgd.tasks.policy import Refused, check_allowed, find_program, spawn_cwd

__all__ = ["agent_argv", "program", "spawn_plan", "task_argv", "task_limits"]

_PLACEHOLDER = re.compile(r"\{prompt\}|\{agent\}")


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
    argv = agent_argv(config, task.prompt or "", task.agent)
    if task.resume_session:
        argv += [a.replace("{session}", task.resume_session) for a in config.agent.resume_args]
    return argv


def program(argv0: str, cwd: str, config: Config, field: str) -> str:
    exe = find_program(argv0, cwd, config)
    if exe is None:
        raise Refused(
            f"{field}: {show(argv0)} is not an executable found on PATH or relative to cwd "
            f"{cwd} (bare names are looked up on the daemon's PATH, never the task's env)",
            command=argv0,
        )
    return exe


def task_limits(config: Config, task: Task) -> Limits | None:
    """The limits `task` runs under: its own, else agent.limits for a prompt (read at
    each spawn, so a reload applies to the next attempt); None: no limit at all."""
    limits: Limits | None = None
    if task.limits is not None:
        # Checked at submit; a record from another version may hold fields this one
        # does not know: those are left out, the known ones still apply.
        known = {k: v for k, v in task.limits.items() if k in Limits.__dataclass_fields__}
        try:
            limits = parse(Limits, known, "limits")
        except ValidationError:
            limits = None
    elif task.prompt is not None:
        limits = config.agent.limits
    return limits if limits is not None and limits.any() else None


def spawn_plan(config: Config, root: Path, task: Task) -> tuple[list[str], str]:
    """The argv and cwd to start `task` with now, checked again: a queued task may wait
    long, and its cwd, its program, the config or the daemon itself (a restart loses env
    values) may have changed since submit. Raises Refused, a ValueError, with the
    reason the task fails with."""
    lost = task.lost_env()
    if lost:
        raise Refused(
            f"the value of env {', '.join(lost)} was not kept across a daemon restart "
            "(task env values are never written to disk); resubmit the task"
        )
    cwd = spawn_cwd(task.cwd, root, config)
    argv = task_argv(config, task)
    name = argv[0]
    argv[0] = program(name, cwd, config, "command[0]" if task.command else "agent.command[0]")
    if task.command is not None:
        check_allowed(name, argv[0], config, root)
    return argv, cwd
