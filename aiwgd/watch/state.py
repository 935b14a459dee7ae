"""The watcher's memory: per-path debounce windows and the index of known files.

A change opens (or extends) its path's window; when the window closes the path is
compared with the index: absent -> present is created, present -> present modified,
present -> absent deleted, absent -> absent nothing (it came and went unseen). See
aiwgd/watch/watcher.py for the whole story.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiwgd.watch.rules import Rules

log = logging.getLogger("aiwgd.watcher")

MAX_INDEX = 500_000  # files remembered; past this, unknown files count as new
CHUNK = 250  # paths handled between yields to the event loop

Emit = Callable[[str, str], None]  # (absolute path, kind)


@dataclass
class Scan:
    files: list[str]
    dirs: list[str]
    complete: bool = True


def scan_files(dirs: list[str], rules: Rules, limit: int) -> Scan:
    """Files and directories under `dirs` (built-in ignores pruned), up to `limit` files."""
    out = Scan([], list(dirs))
    stack = list(dirs)
    while stack:
        top = stack.pop()
        try:
            it = os.scandir(top)
        except OSError:
            continue
        with it:
            for de in it:
                if rules.builtin_ignored(de.path):
                    continue
                try:
                    if de.is_dir(follow_symlinks=False):
                        stack.append(de.path)
                        out.dirs.append(de.path)
                        continue
                except OSError:
                    continue
                if len(out.files) >= limit:
                    out.complete = False
                    return out
                out.files.append(de.path)
    return out


@dataclass
class Survey:
    present: set[str]  # every file there is
    recent: list[str]  # those whose inode changed (ctime) since the given time
    complete: bool


def survey(dirs: list[str], files: list[str], rules: Rules, since: float) -> Survey:
    """The files under `dirs` plus `files` that exist, and which of them changed since `since`.

    For a batch of changes watchfiles lost: an unknown file is new, a known one missing
    is deleted, and a known one is only worth a look when its ctime says it changed.
    """
    found = scan_files(dirs, rules, MAX_INDEX)
    present: set[str] = set()
    recent: list[str] = []
    for path in found.files + files:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            continue  # a file entry that is a directory now: scanned as one after a replan
        present.add(path)
        if st.st_ctime >= since:
            recent.append(path)
    return Survey(present, recent, found.complete)


@dataclass
class Pending:
    first: float
    due: float


class Windows:
    def __init__(self, rules: Rules, emit: Emit) -> None:
        self.rules = rules
        self.emit = emit
        self.pending: dict[str, Pending] = {}
        self.known: set[str] = set()  # files as the watcher last saw them
        self.dirs: set[str] = set()  # directories seen, to tell a vanished one
        self.index_complete = True
        self._wake = asyncio.Event()

    # ---- intake --------------------------------------------------------------------
    def touch(self, paths: list[str], now: float, debounce_s: float) -> None:
        """Open or extend the window of each relevant path."""
        cap = max(10 * debounce_s, 1.0)  # a file written non-stop is still reported
        for path in paths:
            if not self.rules.relevant(path):
                continue
            p = self.pending.get(path)
            if p is None:
                self.pending[path] = Pending(now, now + debounce_s)
            else:
                p.due = min(now + debounce_s, p.first + cap)
        self._wake.set()

    def index(self, files: list[str], dirs: list[str], complete: bool) -> None:
        """Remember files that existed before we looked (start, reload)."""
        self.dirs.update(dirs)
        for path in files:
            if len(self.known) >= MAX_INDEX:
                complete = False
                break
            if path not in self.pending and self.rules.relevant(path):
                self.known.add(path)
        if not complete:
            self.index_complete = False
            log.warning(
                "too many files to index; new files may be reported as modified",
                extra={"limit": MAX_INDEX},
            )

    def reconcile(self, seen: Survey, now: float, debounce_s: float) -> None:
        """Open windows for what changed while changes were lost (see survey())."""
        touched = [p for p in seen.present if p not in self.known] + seen.recent
        if seen.complete:  # else a known file not listed may still be there
            touched += [p for p in self.known if p not in seen.present]
        self.touch(touched, now, debounce_s)

    # ---- closing windows -------------------------------------------------------------
    async def run(self) -> None:
        """Close windows as they come due, for ever."""
        while True:
            if not self.pending:
                await self._wake.wait()
                self._wake.clear()
                continue
            delay = min(p.due for p in self.pending.values()) - time.monotonic()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            try:
                await self.flush_due()
            except Exception:
                log.exception("file watcher flush failed")

    async def flush_due(self) -> None:
        now = time.monotonic()
        due = [path for path, p in self.pending.items() if p.due <= now]
        for path in due:
            del self.pending[path]
        gone: list[str] = []
        new_dirs: list[str] = []
        for i, path in enumerate(due):
            if i and i % CHUNK == 0:
                await asyncio.sleep(0)  # a 10,000-file flush must not stall RPC
            try:
                st: os.stat_result | None = os.lstat(path)
            except OSError:
                st = None
            if st is not None and stat.S_ISDIR(st.st_mode):
                if path not in self.dirs:  # new here: created, or moved in with its files
                    self.dirs.add(path)
                    new_dirs.append(path)
                continue
            self._settle(path, st is not None, gone)
        if new_dirs:
            # Files written into a new (or moved-in) directory before its watch existed.
            found = await asyncio.to_thread(scan_files, new_dirs, self.rules, MAX_INDEX)
            self.dirs.update(found.dirs)
            for path in found.files:
                if path not in self.known and path not in self.pending:
                    self._settle(path, True, gone)
        if gone:
            self._sweep(set(gone))

    def _settle(self, path: str, exists: bool, gone: list[str]) -> None:
        before = path in self.known
        if exists and not before:
            kind = "created"
            if len(self.known) < MAX_INDEX:
                self.known.add(path)
        elif exists:
            kind = "modified"
        elif before:
            kind = "deleted"
            self.known.discard(path)
        else:
            if path in self.dirs:  # else a file that came and went inside one window
                gone.append(path)
            return
        self.emit(path, kind)

    def _sweep(self, gone: set[str]) -> None:
        """Known files below directories that vanished (moved away) are deleted too."""

        def below_gone(path: str) -> bool:
            parent = os.path.dirname(path)
            while len(parent) > 1:
                if parent in gone:
                    return True
                parent = os.path.dirname(parent)
            return False

        self.dirs = {d for d in self.dirs if d not in gone and not below_gone(d)}
        lost = [path for path in self.known if below_gone(path)]
        for path in lost:
            self.known.discard(path)
            self.emit(path, "deleted")
