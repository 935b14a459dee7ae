"""Where everything lives on disk, derived from the project root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV = "AIWG_ROOT"
MARKER = ".aiwg"  # the directory that makes a directory a project, as .git/ does


class RootError(ValueError):
    """A root named by --root or $AIWG_ROOT that is not an existing directory."""


def find_project(start: Path) -> Path | None:
    """The nearest of `start` and its parents that holds `.aiwg/` (as git finds `.git`)."""
    for directory in (start, *start.parents):
        if (directory / MARKER).is_dir():
            return directory
    return None


def resolve_root(option: str | os.PathLike[str] | None = None, *, check: bool = False) -> Path:
    """Project root: the --root option, else $AIWG_ROOT, else the nearest directory from
    the cwd up that holds `.aiwg/`, else the cwd (where `start` and `config init` create one).

    With `check`, a root the option or the environment names must be an existing
    directory (RootError): a typo must not become a new project that nobody uses.
    """
    if option:
        raw, name = os.fspath(option), "--root "
    elif os.environ.get(ROOT_ENV):
        raw, name = os.environ[ROOT_ENV], f"{ROOT_ENV}="
    else:
        cwd = Path.cwd().resolve()
        return find_project(cwd) or cwd
    root = Path(raw).expanduser().resolve()
    if check and not root.is_dir():
        why = "not a directory" if root.exists() else "no such directory"
        raise RootError(f"{name}{raw}: {why}")
    return root


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def aiwg_dir(self) -> Path:
        return self.root / ".aiwg"

    @property
    def config_file(self) -> Path:
        return self.aiwg_dir / "daemon.json"

    @property
    def pid_file(self) -> Path:
        return self.aiwg_dir / "daemon.pid"

    @property
    def daemon_dir(self) -> Path:
        return self.aiwg_dir / "daemon"

    @property
    def socket(self) -> Path:
        return self.daemon_dir / "daemon.sock"

    @property
    def lock_file(self) -> Path:
        return self.daemon_dir / "lock"

    @property
    def state_file(self) -> Path:
        return self.daemon_dir / "state.json"

    @property
    def log_file(self) -> Path:
        return self.daemon_dir / "daemon.log"

    @property
    def out_file(self) -> Path:
        return self.daemon_dir / "daemon.out"

    @property
    def tasks_file(self) -> Path:
        return self.daemon_dir / "tasks.json"

    @property
    def tasks_journal(self) -> Path:
        return self.daemon_dir / "tasks.journal"

    @property
    def tasks_ids(self) -> Path:
        """The task id high-water mark, kept apart so a damaged tasks.json cannot lose it."""
        return self.daemon_dir / "tasks.ids"

    @property
    def task_logs_dir(self) -> Path:
        return self.daemon_dir / "tasks"

    @property
    def events_file(self) -> Path:
        return self.daemon_dir / "events.jsonl"

    @property
    def dlq_file(self) -> Path:
        return self.daemon_dir / "dlq.jsonl"

    @property
    def runtime_state_file(self) -> Path:
        """Small persisted runtime facts: last cron fires, rules switched off by RPC."""
        return self.daemon_dir / "runtime.json"

    @property
    def kills_file(self) -> Path:
        """What the watchdog and resource limits killed, and why (procs/kills.py)."""
        return self.daemon_dir / "kills.jsonl"

    def socket_address(self) -> str:
        """The path to bind/connect, shortened if the absolute one is over the limit.

        AF_UNIX paths are capped near 107 bytes; deep project dirs exceed it, so fall
        back to a path relative to the cwd when that is shorter.
        """
        full = str(self.socket)
        if len(full.encode()) < 100:
            return full
        rel = os.path.relpath(full)
        return rel if len(rel.encode()) < len(full.encode()) else full
