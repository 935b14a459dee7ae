"""The programs prompt tasks depend on: the agent command, and git for worktrees."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Mapping

from aiwgd.cli.doctor.model import Context, Result, fail, ok, quote, skip, warn

HELP_TIMEOUT_S = 3.0
GIT_TIMEOUT_S = 3.0
GIT_MIN = (2, 17)  # `git worktree` as aiwgd/agents/worktree.py uses it
STREAM_JSON = "stream-json"


class RunFailed(Exception):
    """A program could not be started, or did not finish in time."""


def run(argv: list[str], timeout: float, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """(exit code, stdout + stderr) of `argv`: no shell, stdin from /dev/null, in its own
    session so that a timeout ends it and everything it started."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    except OSError as exc:
        raise RunFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RunFailed(f"{argv[0]} did not finish within {timeout:g}s") from None
    return proc.returncode, out.decode(errors="replace")


def _prompt_actions(ctx: Context) -> bool:
    """Whether a rule or a scheduled job of the config runs prompt tasks."""
    cfg = ctx.config
    assert cfg is not None
    actions = [r.action for r in cfg.rules] + [
        j.action for j in cfg.schedule.jobs if not isinstance(j.action, str)
    ]
    return any(a.type == "task" and a.prompt is not None for a in actions)


def check_agent(ctx: Context) -> Result:
    name = "agent"
    cfg = ctx.config
    if cfg is None:
        return skip(name, "the config is invalid (see config)")
    from aiwgd.tasks.policy import find_program, search_path

    program = cfg.agent.command[0]
    if "{" in program:
        return skip(name, f'agent.command[0] is "{program}": each task names its own program')
    exe = find_program(program, str(ctx.paths.root), cfg)
    where = f" (agent.env.PATH={search_path(cfg)})" if "PATH" in cfg.agent.env else ""
    if exe is None:
        message = f'agent.command "{program}" is not found on the daemon\'s PATH{where}'
        fix = f"install {program}, or set agent.command[0] in {ctx.paths.config_file} to its path"
        needed = cfg.agent.output == STREAM_JSON or _prompt_actions(ctx)
        return (fail if needed else warn)(name, f"{message}: prompt tasks fail", fix)
    env = {**os.environ, **cfg.agent.env}
    try:
        _, text = run([exe, "--help"], HELP_TIMEOUT_S, env)
    except RunFailed as exc:
        return warn(name, f"{exe} found; {exc}", f"check that {quote(exe, '--help')} works")
    supported = STREAM_JSON in text
    if cfg.agent.output == STREAM_JSON and not supported:
        return fail(
            name,
            f"agent.output is stream-json but {exe} --help never mentions --output-format "
            "stream-json: its output cannot be read for the session, tokens and cost",
            f'set agent.output to "text" in {ctx.paths.config_file}, or update {program}',
        )
    if supported and cfg.agent.output != STREAM_JSON:
        return ok(
            name,
            f'{exe} (supports stream-json: agent.output "stream-json" adds the session, '
            "tokens and cost)",
        )
    return ok(name, f"{exe} (agent.output {cfg.agent.output})")


def _git_env() -> dict[str, str]:
    # A variable that points git at another repository (we may run inside a git hook)
    # would make it answer about that one.
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


def check_git(ctx: Context) -> Result:
    name = "git"
    cfg = ctx.config
    if cfg is None:
        return skip(name, "the config is invalid (see config)")
    if cfg.agent.isolate != "worktree":
        return skip(name, "agent.isolate is not worktree: no task needs git")
    from aiwgd.tasks.policy import find_program

    unisolate = f'or set agent.isolate to "none" in {ctx.paths.config_file}'
    git = find_program("git", str(ctx.paths.root), cfg)
    if git is None:
        message = "agent.isolate is worktree but git is not on PATH"
        return fail(name, message, f"install git, {unisolate}")
    try:
        problem = _git_problem(git, ctx)
    except RunFailed as exc:
        return fail(name, str(exc), f"check that {quote(git, '--version')} works")
    if problem is not None:
        message, fix = problem
        return fail(name, message, f"{fix}, {unisolate}")
    return ok(name, f"{ctx.paths.root} is a git repository with a commit")


def _git_problem(git: str, ctx: Context) -> tuple[str, str] | None:
    """(what is wrong, what to do) about git for worktrees, or None."""
    root, env = ctx.paths.root, _git_env()
    _, out = run([git, "--version"], GIT_TIMEOUT_S, env)
    m = re.search(r"(\d+)\.(\d+)", out)
    have = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if have < GIT_MIN:
        need = ".".join(map(str, GIT_MIN))
        return f"{out.strip() or git}: worktrees need git {need} or newer", "upgrade git"
    at = [git, "-C", str(root), "rev-parse"]
    if run([*at, "--show-toplevel"], GIT_TIMEOUT_S, env)[0] != 0:
        return (
            f"agent.isolate is worktree but {root} is not a git repository",
            f"{quote('git', '-C', root, 'init')} and commit once",
        )
    if run([*at, "--verify", "-q", "HEAD"], GIT_TIMEOUT_S, env)[0] != 0:
        commit = quote("git", "-C", root, "commit", "--allow-empty", "-m", "start")
        return f"{root} has no commit yet: a worktree starts from one", commit
    return None
