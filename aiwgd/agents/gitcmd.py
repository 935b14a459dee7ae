"""Run git as a subprocess: an argv list (never a shell), no prompts, a deadline; and
`Repo`, the few queries about one repository that aiwgd.agents.worktree asks.

Every call is `git -C <dir> ...` with stdin from /dev/null, in its own session (so a
timeout can kill git and whatever it started, e.g. a hook or a credential helper), and
with the variables that would point git at another repository removed from its
environment: the daemon may itself run under a git hook that set them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# `git rev-parse --local-env-vars`: each one would redirect git away from `-C <dir>`.
_REPO_ENV = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
)

DEFAULT_TIMEOUT = 120.0
# Operations that leave a tree half-done; a merge must not start on top of one.
_IN_PROGRESS = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "rebase-merge", "rebase-apply")

# Nothing git starts may outlive the call: no auto gc or maintenance detaching into the
# background, no fsmonitor daemon; and no colour codes in what we parse or hand back.
_CONFIG = (
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
    "-c", "core.fsmonitor=false",
    "-c", "color.ui=false",
)  # fmt: skip


class GitError(Exception):
    """git could not be run, exited non-zero or ran out of time; `line` is one line."""

    def __init__(self, line: str, returncode: int | None = None) -> None:
        super().__init__(line)
        self.line = line
        self.returncode = returncode


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def message(self) -> str:
        """git's own words on one line: its fatal/error lines if any, else all it said."""
        return one_line(self.stderr) or one_line(self.stdout) or f"exit status {self.returncode}"


def one_line(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("hint:")]
    # What comes before the first fatal/error line is progress ("Preparing worktree
    # ..."); what follows it is part of the reason (the files a merge would overwrite).
    for i, line in enumerate(lines):
        if line.startswith(("fatal:", "error:")):
            return "; ".join(lines[i:])
    return "; ".join(lines)


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_ENV}
    env["GIT_TERMINAL_PROMPT"] = "0"
    # A credential or ssh prompt would wait on a terminal the daemon does not have.
    env["GIT_ASKPASS"] = "true"
    env["SSH_ASKPASS"] = "true"
    env["GIT_EDITOR"] = "true"
    env["GIT_MERGE_AUTOEDIT"] = "no"
    if extra:
        env.update(extra)
    return env


async def git(
    cwd: Path | str,
    *args: str,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> GitResult:
    """`git -C cwd args...`; raises GitError on a non-zero exit when `check`."""
    argv = ["git", "-C", str(cwd), *_CONFIG, *args]
    what = f"git {args[0]}" if args else "git"
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=git_env(env),
            start_new_session=True,
        )
    except OSError as exc:
        raise GitError(f"cannot run git: {exc.strerror or exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        # Its whole group goes: git may have started a hook, a pager or a helper.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise GitError(f"{what} timed out after {timeout:g}s") from None
    assert proc.returncode is not None
    result = GitResult(
        proc.returncode,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
    )
    if check and not result.ok:
        raise GitError(f"{what}: {result.message()}", result.returncode)
    return result


@dataclass(frozen=True)
class ListedWorktree:
    branch: str | None  # the full ref, None when detached
    locked: str | None  # the lock's reason ("" when given none), None when not locked


def parse_worktree_list(text: str) -> dict[str, ListedWorktree]:
    """`git worktree list --porcelain` as real path -> entry."""
    found: dict[str, ListedWorktree] = {}
    path: str | None = None
    fields: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line:  # a blank line ends each worktree's block
            if path is not None:
                found[path] = ListedWorktree(fields.get("branch"), fields.get("locked"))
            path, fields = None, {}
            continue
        key, _, value = line.partition(" ")
        if key == "worktree":
            path = os.path.realpath(value)
        else:
            fields[key] = value
    return found


class Repo:
    """One repository's git, run from `root`: the queries worktrees need, one call each."""

    def __init__(self, root: Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.root = root
        self.timeout = timeout

    async def run(
        self,
        *args: str,
        cwd: Path | str | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> GitResult:
        where = self.root if cwd is None else cwd
        return await git(where, *args, timeout=self.timeout, env=env, check=check)

    async def out(self, *args: str, cwd: Path | str | None = None) -> str:
        return (await self.run(*args, cwd=cwd)).stdout.strip()

    async def tip(self, branch: str) -> str | None:
        got = await self.run(
            "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False
        )
        return got.stdout.strip() if got.ok else None

    async def current_branch(self) -> str | None:
        got = await self.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        return got.stdout.strip() if got.ok else None

    async def reflog(self, branch: str) -> list[str]:
        """The branch's positions, newest first: the last is where it was created."""
        got = await self.run("reflog", "show", "--format=%H", f"refs/heads/{branch}", check=False)
        return got.stdout.split() if got.ok else []

    async def is_ancestor(self, commit: str, of: str) -> bool:
        return (await self.run("merge-base", "--is-ancestor", commit, of, check=False)).ok

    async def worktrees(self) -> dict[str, ListedWorktree]:
        return parse_worktree_list(await self.out("worktree", "list", "--porcelain"))

    async def in_progress(self) -> str | None:
        """The operation that left the main tree half-done (a merge, a rebase...), if any."""
        for name in _IN_PROGRESS:
            if os.path.exists(self.root / await self.out("rev-parse", "--git-path", name)):
                return name
        return None

    async def tracked_changes(self, cwd: Path | str | None = None) -> list[str]:
        """Staged or unstaged changes to tracked files (untracked ones are not in the way
        of a merge unless git says so itself)."""
        optional = {"GIT_OPTIONAL_LOCKS": "0"}  # looking must not take the index lock
        got = await self.run("status", "--porcelain", "-uno", cwd=cwd, env=optional)
        return [line[3:] for line in got.stdout.splitlines() if line.strip()]
