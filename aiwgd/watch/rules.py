"""Which file changes the watcher reports: built-in ignores and per-entry filters.

Pure functions of paths (no IO), so they are cheap to test and to run on a burst.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aiwgd.config.globs import PathGlob
from aiwgd.config.model import WatchPath

# Config words -> the kind an event is named after.
KIND_OF = {"create": "created", "modify": "modified", "delete": "deleted"}

# Directories never reported, wherever they are: VCS internals, dependency trees,
# bytecode caches. `.git` is matched as a whole name, so `.github/` is watched.
IGNORED_DIRS = frozenset({".git", "node_modules", "__pycache__"})
SWAP_SUFFIXES = (".swp", ".swo", ".swx", "~")


def is_editor_temp(name: str) -> bool:
    """Editor swap and scratch files: vim (.swp, 4913, ~), emacs (.#x, #x#)."""
    return (
        name.endswith(SWAP_SUFFIXES)
        or name.startswith(".#")
        or name == "4913"
        or (len(name) > 1 and name.startswith("#") and name.endswith("#"))
    )


@dataclass(frozen=True)
class Entry:
    """One `watch.paths[]` item, resolved against the project root."""

    path: str  # as configured, carried in events as data.watch
    abs: str  # absolute, normalised
    kinds: frozenset[str]
    ignore: tuple[PathGlob, ...]
    extensions: tuple[str, ...]

    def covers(self, path: str) -> str | None:
        """`path` relative to this entry, or None if it is not under it."""
        if path == self.abs:
            return os.path.basename(path)  # a file entry: filters see its name
        if path.startswith(self.abs + "/"):
            return path[len(self.abs) + 1 :]
        return None

    def admits(self, rel: str, check_extension: bool = True) -> bool:
        if any(g.matches(rel) for g in self.ignore):
            return False
        if check_extension and self.extensions:
            return rel.rsplit("/", 1)[-1].endswith(self.extensions)
        return True


def compile_entries(root: Path, paths: list[WatchPath]) -> list[Entry]:
    """Most specific entry first, so a nested entry decides for its own files."""
    entries = [
        Entry(
            path=p.path,
            abs=os.path.normpath(os.path.join(root, p.path)),
            kinds=frozenset(KIND_OF[e] for e in p.events),
            ignore=tuple(PathGlob(g) for g in p.ignore),
            extensions=tuple(p.extensions),
        )
        for p in paths
    ]
    return sorted(entries, key=lambda e: len(e.abs), reverse=True)


class Rules:
    """The built-in ignores plus the configured entries, for one project root."""

    def __init__(
        self, root: Path, daemon_dir: Path, paths: list[WatchPath], pid_file: Path | None = None
    ) -> None:
        self.root = str(root)
        self.daemon_dir = str(daemon_dir)
        # The PID file (and its write_atomic temp) is the daemon's one write outside
        # .aiwg/daemon/, made after the watcher started.
        self.pid_file = str(pid_file) if pid_file else None
        self.entries = compile_entries(root, paths)

    def builtin_ignored(self, path: str) -> bool:
        if path == self.daemon_dir or path.startswith(self.daemon_dir + "/"):
            return True  # the daemon's own writes must never trigger anything
        if self.pid_file and path.startswith(os.path.dirname(self.pid_file) + "/"):
            name = os.path.basename(self.pid_file)
            if path == self.pid_file or os.path.basename(path).startswith(f".{name}."):
                return True
        rel = path[len(self.root) + 1 :] if path.startswith(self.root + "/") else path
        parts = rel.split("/")
        return is_editor_temp(parts[-1]) or any(p in IGNORED_DIRS for p in parts)

    def relevant(self, path: str) -> bool:
        """Worth tracking: some entry covers it and does not ignore it (any extension)."""
        if self.builtin_ignored(path):
            return False
        for entry in self.entries:
            rel = entry.covers(path)
            if rel is not None and entry.admits(rel, check_extension=False):
                return True
        return False

    def select(self, path: str, kind: str) -> Entry | None:
        """The entry that reports this change: the most specific one that admits it."""
        if self.builtin_ignored(path):
            return None
        for entry in self.entries:
            rel = entry.covers(path)
            if rel is not None and kind in entry.kinds and entry.admits(rel):
                return entry
        return None

    def relative(self, path: str) -> str:
        """data.path: relative to the project root (absolute when outside it)."""
        if path == self.root:
            return "."
        return path[len(self.root) + 1 :] if path.startswith(self.root + "/") else path
