"""The file watcher: watchfiles -> debounced, filtered `file.created|modified|deleted`.

How a change becomes an event:
1. One recursive watchfiles RustNotify over every configured directory that exists,
   plus (only when needed) one non-recursive one over the parent directories of file
   entries and the nearest existing ancestors of entries that do not exist yet; each
   is polled by a thread of its own (aiwgd/watch/notify.py), which dates every change.
2. Each change is checked against the built-in ignores (.git/, node_modules/,
   __pycache__/, editor swap files, the daemon's own .aiwg/daemon/ and PID file) and
   the entries' `ignore` globs; what survives waits in a per-path debounce window that
   runs from when the change happened: every further change to the path restarts the
   window (`watch.debounce_ms`), capped at ten windows (at least 1 s) so a file
   written non-stop still gets reported. A change reaches its rule within the
   debounce + 100 ms (the poll step is chosen for it, see notify.step_ms()).
3. When the window closes, the path's state then is compared with what the watcher
   knew before the window (an index of the files under the watched entries, built at
   start): absent -> present is `file.created`, present -> present `file.modified`,
   present -> absent `file.deleted`. So a burst of writes gives one event; create then
   modify gives one `file.created`; create then delete inside one window gives
   nothing (the file never existed for anyone who looked); an editor's save by
   rename-over is `file.modified`. Directories get no events of their own: a
   directory that appears is scanned and its files reported as created, one that
   vanishes reports its known files as deleted.
4. The most specific entry covering the path that takes the kind (`events`) and the
   extension (suffix match, ".test.ts" works) reports it: data = {path (relative to
   the project root), watch (the entry's configured path)}.

A missing entry is reported in status and logged; it is picked up when it appears,
and a watched directory deleted and recreated is watched again. Reload restarts the
watches with the new paths; pending debounced changes are kept.

The watcher's state (WatcherState, in status) says what it is doing, not where it may
go next: every replan (start, reload, a structural change, the retry after a failed
watch) re-derives it from the config and the disk, so any state can follow any other,
and only `_set_state()` writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aiwgd.lifecycle import Subsystem
from aiwgd.watch.notify import NotifyThread, live_threads, step_ms
from aiwgd.watch.rules import Rules
from aiwgd.watch.state import MAX_INDEX, Dated, Windows, scan_files, survey

if TYPE_CHECKING:
    from aiwgd.config import Config, Paths
    from aiwgd.events.router import EventRouter

log = logging.getLogger("aiwgd.watcher")
# watchfiles logs every batch at INFO; our own counters and events say more.
logging.getLogger("watchfiles").setLevel(logging.WARNING)

CHUNK = 250  # changes handled between yields to the event loop
CTIME_SLACK_S = 0.1  # file ctimes come from a coarse kernel clock
# watchfiles' Rust core needs every path as UTF-8: a file name that is not valid UTF-8
# makes it drop the whole pending batch and raise this.
UNDECODABLE = "Unable to decode path"


class WatcherState(StrEnum):
    STOPPED = "stopped"  # not started yet, or stopped
    DISABLED = "disabled"  # watch.enabled is false
    WATCHING = "watching"  # at least one directory is watched
    IDLE = "idle"  # enabled, but no configured path exists yet
    ERROR = "error"  # a watch failed (`error` says why); a replan is due


@dataclass(frozen=True)
class Plan:
    recursive: tuple[str, ...]  # existing directory entries
    flat: tuple[str, ...]  # parents of file entries, ancestors of missing ones
    missing: tuple[str, ...]


def make_plan(entry_paths: list[str]) -> Plan:
    recursive: set[str] = set()
    flat: set[str] = set()
    missing: list[str] = []
    for path in entry_paths:
        if os.path.isdir(path):
            recursive.add(path)
            continue
        if not os.path.lexists(path):
            missing.append(path)
        parent = os.path.dirname(path)
        while parent != os.path.dirname(parent) and not os.path.isdir(parent):
            parent = os.path.dirname(parent)
        flat.add(parent)

    def inside(path: str, roots: set[str]) -> bool:
        return any(path != r and path.startswith(r.rstrip("/") + "/") for r in roots)

    rec = {r for r in recursive if not inside(r, recursive)}
    flat = {f for f in flat if f not in rec and not inside(f, rec)}
    return Plan(tuple(sorted(rec)), tuple(sorted(flat)), tuple(sorted(missing)))


class FileWatcher(Subsystem):
    name = "watcher"

    def __init__(self, router: EventRouter, paths: Paths, config: Config) -> None:
        self.router = router
        self.paths = paths
        self.section = config.watch
        self.rules = Rules(paths.root, paths.daemon_dir, self.section.paths, paths.pid_file)
        self.plan = Plan((), (), ())
        self.step_ms = step_ms(self.section.debounce_ms)
        self.windows = Windows(self.rules, self._emit, *self._window_times())
        self.state = WatcherState.STOPPED
        self.error: str | None = None
        self.counts = {"changes": 0, "created": 0, "modified": 0, "deleted": 0, "restarts": 0}
        self._watches: list[NotifyThread] = []
        self._batches: asyncio.Queue[tuple[list[Dated], int]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._replan_wanted = asyncio.Event()
        self._plan_lock = asyncio.Lock()
        self._retry_s = 1.0
        self._force_next = False
        self._lost_since: float | None = None  # changes since then were lost: survey them

    # ---- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.windows.run(), name="watcher-flush"),
            asyncio.create_task(self._plan_loop(), name="watcher-plan"),
            asyncio.create_task(self._intake_loop(), name="watcher-intake"),
        ]
        await self._replan(index=True)

    async def stop(self, fast: bool = False) -> None:
        self._stop_watches()  # never waits: the threads end by themselves
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_state(WatcherState.STOPPED)

    async def apply_config(self, config: Config) -> None:
        self.section = config.watch
        self.rules = Rules(
            self.paths.root, self.paths.daemon_dir, self.section.paths, self.paths.pid_file
        )
        self.step_ms = step_ms(self.section.debounce_ms)
        self.windows.rules = self.rules
        self.windows.debounce_s, self.windows.lag_s = self._window_times()
        # Pending changes stay: they are judged against the new entries when due.
        await self._replan(index=True, force=True)

    def _window_times(self) -> tuple[float, float]:
        """The debounce, and the oldest a change can be when a watch delivers it.

        Delivery takes up to a step; twice that leaves room for a loaded machine.
        """
        return self.section.debounce_ms / 1000, 2 * self.step_ms / 1000

    def _set_state(self, new: WatcherState) -> None:
        if new is not self.state:
            log.debug("watcher state changed", extra={"state": new, "previous": self.state})
            self.state = new

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "error": self.error,
            "watching": [self.rules.relative(p) for p in self.plan.recursive],
            "parents": [self.rules.relative(p) for p in self.plan.flat],
            "missing": [self.rules.relative(p) for p in self.plan.missing],
            "pending": len(self.windows.pending),
            "indexed_files": len(self.windows.known),
            "index_complete": self.windows.index_complete,
            "debounce_ms": self.section.debounce_ms,
            "step_ms": self.step_ms,  # how often a watch looks for changes
            "threads": live_threads(),  # stopped ones that have not ended yet included
            **self.counts,
        }

    # ---- planning: what to watch -----------------------------------------------------
    async def _replan(self, index: bool = False, force: bool = False) -> None:
        """Recompute what to watch; restart the watches if that changed.

        `index`: files in newly watched directories existed before (start, reload);
        otherwise a directory just appeared and its files are reported as created.
        """
        async with self._plan_lock:
            if not self.section.enabled:
                self._stop_watches()
                self.plan = Plan((), (), ())
                self._set_state(WatcherState.DISABLED)
                return
            old = self.plan
            plan = make_plan([e.abs for e in self.rules.entries])
            for path in set(plan.missing) - set(old.missing):
                log.warning(
                    "watched path does not exist yet; waiting for it to appear",
                    extra={"path": self.rules.relative(path)},
                )
            self.plan = plan
            same = (plan.recursive, plan.flat) == (old.recursive, old.flat)
            if not same or force or not self._watches:
                self.error = None
                # New watches first, old ones after: a change in between is seen twice
                # (harmless: windows are per path), never zero times.
                old_watches, self._watches = self._watches, []
                await self._start_watches()  # returns once their inotify watches exist
                self._stop_watches(old_watches)
                if any(os.path.lexists(p) for p in plan.missing):
                    # It appeared while the watch on its parent was starting, too early
                    # for that watch to see: plan again (it is watched, its files new).
                    self._replan_wanted.set()
            await self._take_in(old, plan, index)
            await self._recover_lost()
            # A watch that failed in its first step has set self.error already.
            if self.error:
                self._set_state(WatcherState.ERROR)
            elif plan.recursive or plan.flat:
                self._set_state(WatcherState.WATCHING)
            else:
                self._set_state(WatcherState.IDLE)

    async def _take_in(self, old: Plan, plan: Plan, index: bool) -> None:
        """Scan what is newly watched: remember it (index) or report it as created."""
        new_dirs = [d for d in plan.recursive if d not in old.recursive]
        new_files = [
            e.abs
            for e in self.rules.entries
            if e.abs not in old.recursive and os.path.isfile(e.abs)
        ]
        if not new_dirs and not new_files:
            return
        found = await asyncio.to_thread(scan_files, new_dirs, self.rules, MAX_INDEX)
        # Known ones are not news: the flusher may have scanned a new directory first (its
        # window can be due on arrival) and reported its files; not again, as modified.
        files = [f for f in found.files + new_files if f not in self.windows.known]
        if index:
            self.windows.index(files, found.dirs, found.complete)
        else:
            self.windows.dirs.update(found.dirs)
            self.windows.touch(files, time.monotonic())

    async def _recover_lost(self) -> None:
        """Rebuild from the disk what watchfiles dropped (the watches are running again)."""
        if self._lost_since is None or not self._watches:
            return
        since, self._lost_since = self._lost_since, None
        files = [e.abs for e in self.rules.entries if e.abs not in self.plan.recursive]
        seen = await asyncio.to_thread(
            survey, list(self.plan.recursive), files, self.rules, since - CTIME_SLACK_S
        )
        self.windows.reconcile(seen, time.monotonic())

    async def _start_watches(self) -> None:
        watches = [
            NotifyThread(dirs, recursive, self.step_ms, self.windows.lag_s, self)
            for dirs, recursive in ((self.plan.recursive, True), (self.plan.flat, False))
            if dirs
        ]
        self._watches.extend(watches)
        await asyncio.gather(*(w.start() for w in watches))
        self.counts["restarts"] += 1

    def _stop_watches(self, watches: list[NotifyThread] | None = None) -> None:
        if watches is None:
            watches, self._watches = self._watches, []
        for watch in watches:
            watch.stop()

    # ---- what the watch threads hand over (notify.Sink) ----------------------------------
    def relevant(self, path: str) -> bool:
        return self.rules.relevant(path)

    def take(self, changes: list[Dated], raw: int) -> None:
        self._batches.put_nowait((changes, raw))

    def failed(self, exc: Exception, since: float) -> None:
        if UNDECODABLE in str(exc):
            # Not a failure of the watch: restart it now and recover the lost batch
            # (the odd name included, as os.fsdecode spells it) from the disk.
            log.info(
                "a changed file's name is not valid UTF-8; rescanning the watched paths",
                extra={"error": str(exc)},
            )
            lost = self._lost_since
            self._lost_since = since if lost is None else min(lost, since)
            self._force_next = True
            self._replan_wanted.set()
            return
        # No inotify instance or file descriptor was left for a new watch, or the
        # notify backend failed: report it and plan again after a backoff. (A directory
        # that cannot be watched is skipped by watchfiles, as ignore_permission_denied
        # asks; its disappearance is a structural change.)
        self.error = f"{type(exc).__name__}: {exc}"
        self._set_state(WatcherState.ERROR)
        fields = {"error": self.error, "retry_in_s": self._retry_s}
        log.error("file watch failed; retrying", extra=fields)
        self._force_next = True
        asyncio.get_running_loop().call_later(self._retry_s, self._replan_wanted.set)
        self._retry_s = min(self._retry_s * 2, 30.0)

    async def _plan_loop(self) -> None:
        """Replans requested by changes run here, one at a time, never lost."""
        while True:
            await self._replan_wanted.wait()
            self._replan_wanted.clear()
            force, self._force_next = self._force_next, False
            try:
                await self._replan(force=force)
            except Exception:
                log.exception("file watcher replan failed")

    # ---- intake: raw changes -> debounce windows -----------------------------------
    def structural(self, path: str) -> bool:
        """Might this change alter what must be watched (a root gone, a missing path here)?

        The kind is not trusted: watchfiles reports a directory moved in from outside
        as "deleted" (it pairs rename halves by alternation), so any change on a
        watched directory, a missing path or one of their ancestors triggers a replan,
        which looks at the disk itself.
        """
        plan = self.plan
        return any(
            w == path or w.startswith(path + "/") for w in plan.recursive + plan.flat + plan.missing
        )

    async def _intake_loop(self) -> None:
        while True:
            changes, raw = await self._batches.get()
            try:
                await self._intake(changes, raw)
            except Exception:
                log.exception("file watcher intake failed")

    async def _intake(self, changes: list[Dated], raw: int) -> None:
        if not self.section.enabled:
            return  # the last batch of a watch stopped by a reload that disabled watching
        replan = False
        self.counts["changes"] += raw
        for start in range(0, len(changes), CHUNK):
            if start:
                await asyncio.sleep(0)  # a 10,000-file burst must not stall RPC
            chunk = changes[start : start + CHUNK]
            replan = replan or any(self.structural(p) for p, _, _ in chunk)
            self.windows.touch_dated(chunk)
        if replan:
            self._retry_s = 1.0
            self._replan_wanted.set()

    def _emit(self, path: str, kind: str) -> None:
        entry = self.rules.select(path, kind)
        if entry is None:
            return
        self.counts[kind] += 1
        self.router.publish(
            f"file.{kind}", {"path": self.rules.relative(path), "watch": entry.path}, "watcher"
        )
