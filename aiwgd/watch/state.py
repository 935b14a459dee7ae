"""The watcher's memory: per-path debounce windows and the index of known files.

A change opens (or extends) its path's window; when the window closes the path is
compared with the index: absent -> present is created, present -> present modified,
present -> absent deleted, absent -> absent nothing (it came and went unseen). See
aiwgd/watch/watcher.py for the whole story.

A window runs from when the change happened, not from when the watcher heard of it
(that is up to a poll step later, see aiwgd/watch/notify.py): changes come dated
by the file's ctime, and a window about to close looks at the file once more, so a
write still on its way through the watcher keeps the window open instead of firing
it in the middle of a burst. For the same lag, a change that a directory scan found
first (a new directory, a replan) may be delivered after its event went out: a file
left exactly as its last event reported it (inode, ctime) is not reported again.
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
# File times come from the kernel's coarse clock, up to a tick (1-10 ms) behind the
# clock they are compared with: taken off a change's age, so a window never closes early.
COARSE_S = 0.01
REPORTED_MAX = 50_000  # recent reports remembered, to know a late delivery of one

Emit = Callable[[str, str], None]  # (absolute path, kind)
# A change as the watch thread hands it over: (path, when it happened on the monotonic
# clock, the ctime (wall clock) it was dated by, or None when nothing dated it).
Dated = tuple[str, float, float | None]


def changed_at(stamp: float, wall: float, mono: float, lag_s: float) -> float:
    """When a change whose inode reads ctime `stamp` happened, on the monotonic clock.

    ctime, not mtime: the kernel sets it to the time of every change and nothing can set
    it back (cp -p, tar and editors preserve mtimes). The age is clamped to [0, lag_s]
    (`lag_s`: the oldest a change can be when it is delivered): a clock jump or a file
    system with a clock of its own must not close a window early or keep it open long.
    """
    return mono - min(max(wall - stamp - COARSE_S, 0.0), lag_s)


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
    first: float  # when the window opened (monotonic)
    due: float
    stamp: float | None  # the newest ctime the window accounts for; None: not dated


class Windows:
    def __init__(self, rules: Rules, emit: Emit, debounce_s: float, lag_s: float) -> None:
        self.rules = rules
        self.emit = emit
        self.debounce_s = debounce_s
        self.lag_s = lag_s  # see changed_at()
        self.pending: dict[str, Pending] = {}
        self.known: set[str] = set()  # files as the watcher last saw them
        self.dirs: set[str] = set()  # directories seen, to tell a vanished one
        self.index_complete = True
        # path -> (inode, ctime_ns, when) of the state its last event reported.
        self._reported: dict[str, tuple[int, int, float]] = {}
        self._wake = asyncio.Event()

    # ---- intake --------------------------------------------------------------------
    @property
    def cap_s(self) -> float:
        return max(10 * self.debounce_s, 1.0)  # a file written non-stop is still reported

    def touch(self, paths: list[str], now: float) -> None:
        """Open or extend the window of each relevant path, for changes at `now`."""
        self.touch_dated([(path, now, None) for path in paths])

    def touch_dated(self, changes: list[Dated]) -> None:
        """Open or extend the window of each relevant path from when it changed."""
        for path, at, stamp in changes:
            if not self.rules.relevant(path):
                continue
            p = self.pending.get(path)
            if p is None:
                self.pending[path] = Pending(at, at + self.debounce_s, stamp)
                continue
            # Deliveries can come out of order (two watches, a rescan): never shorten.
            p.due = max(p.due, min(at + self.debounce_s, p.first + self.cap_s))
            if stamp is not None and (p.stamp is None or stamp > p.stamp):
                p.stamp = stamp
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

    def reconcile(self, seen: Survey, now: float) -> None:
        """Open windows for what changed while changes were lost (see survey())."""
        touched = [p for p in seen.present if p not in self.known] + seen.recent
        if seen.complete:  # else a known file not listed may still be there
            touched += [p for p in self.known if p not in seen.present]
        self.touch(touched, now)

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
        due = {path: p for path, p in self.pending.items() if p.due <= now}
        for path in due:
            del self.pending[path]
        gone: list[str] = []
        new_dirs: list[str] = []
        for i, (path, p) in enumerate(due.items()):
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
            if st is not None and self._changed_since(path, p, st, now):
                continue
            self._settle(path, st, gone)
        if new_dirs:
            # Files written into a new (or moved-in) directory before its watch existed.
            found = await asyncio.to_thread(scan_files, new_dirs, self.rules, MAX_INDEX)
            self.dirs.update(found.dirs)
            fresh = [p for p in found.files if p not in self.known and p not in self.pending]
            stats = await asyncio.to_thread(_lstat_all, fresh)
            for path, st in zip(fresh, stats, strict=True):
                if path not in self.known and path not in self.pending:
                    self._settle(path, st, gone)
        if gone:
            self._sweep(set(gone))
        self._forget_old_reports()

    def _changed_since(self, path: str, p: Pending, st: os.stat_result, now: float) -> bool:
        """Did `path` change after what its window accounts for? Then keep it open.

        That change is still on its way through the watch thread (delivery lags by up
        to a poll step, longer than a short debounce): closing the window now would
        report a burst before its last write, and the last write again later.
        """
        if p.stamp is None or st.st_ctime <= p.stamp:
            return False
        at = changed_at(st.st_ctime, time.time(), now, self.lag_s)
        due = min(at + self.debounce_s, p.first + self.cap_s)
        if due <= now:
            return False
        stamp = st.st_ctime
        later = self.pending.get(path)  # touched again while this flush yielded
        if later is not None:
            due = max(due, later.due)
            stamp = max(stamp, later.stamp or stamp)
        self.pending[path] = Pending(p.first, due, stamp)
        return True

    def _settle(self, path: str, st: os.stat_result | None, gone: list[str]) -> None:
        before = path in self.known
        if st is not None and not before:
            kind = "created"
            if len(self.known) < MAX_INDEX:
                self.known.add(path)
        elif st is not None:
            if self._reported.get(path, (0, 0))[:2] == (st.st_ino, st.st_ctime_ns):
                # Exactly as its last event said: a late delivery of a change a directory
                # scan reported first (a new directory, a replan), not a new change.
                return
            kind = "modified"
        elif before:
            kind = "deleted"
            self.known.discard(path)
        else:
            if path in self.dirs:  # else a file that came and went inside one window
                gone.append(path)
            return
        self._reported.pop(path, None)  # re-added last: the dict stays in report order
        # A change within the same clock tick as the one reported would look the same.
        if st is not None and time.time_ns() - st.st_ctime_ns > COARSE_S * 1e9:
            self._reported[path] = (st.st_ino, st.st_ctime_ns, time.monotonic())
        self.emit(path, kind)

    def _forget_old_reports(self) -> None:
        """A late delivery comes within lag_s of its change and is judged a debounce later."""
        horizon = time.monotonic() - 2 * (self.lag_s + self.debounce_s) - 1.0
        reported = self._reported
        while reported:
            oldest = next(iter(reported))
            if len(reported) <= REPORTED_MAX and reported[oldest][2] >= horizon:
                break
            del reported[oldest]

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
            self._reported.pop(path, None)
            self.emit(path, "deleted")


def _lstat_all(paths: list[str]) -> list[os.stat_result | None]:
    out: list[os.stat_result | None] = []
    for path in paths:
        try:
            out.append(os.lstat(path))
        except OSError:
            out.append(None)
    return out
