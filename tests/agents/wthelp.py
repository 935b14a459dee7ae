"""Real git repositories for the worktree tests: `git init -b main`, identity set locally."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# The machine's own git configuration must not change what the tests see.
GIT_ENV = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


def sh_git(cwd: Path | str, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        env=GIT_ENV,
        stdin=subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def make_repo(root: Path, files: dict[str, str] | None = None) -> str:
    """A repository at `root` with one commit on main; returns its sha."""
    sh_git(root, "init", "-q", "-b", "main")
    sh_git(root, "config", "user.name", "Test")
    sh_git(root, "config", "user.email", "test@example.invalid")
    sh_git(root, "config", "commit.gpgsign", "false")
    for name, text in (files or {"a.txt": "one\n"}).items():
        (root / name).write_text(text)
    return commit_all(root, "initial")


def commit_all(where: Path | str, message: str) -> str:
    sh_git(where, "add", "-A")
    sh_git(where, "commit", "-q", "-m", message)
    return sh_git(where, "rev-parse", "HEAD")


def branches(root: Path) -> list[str]:
    return sh_git(root, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split()


def worktree_paths(root: Path) -> list[str]:
    out = sh_git(root, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def main_tree_clean(root: Path) -> bool:
    return sh_git(root, "status", "--porcelain", "--untracked-files=no") == ""


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
