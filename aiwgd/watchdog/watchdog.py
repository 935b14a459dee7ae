"""The hung-process watchdog: test runners and the like left running forever.

Every `interval_s` a scan (aiwgd/watchdog/scan.py, in a thread) lists the processes a
rule matches; each is judged (aiwgd/watchdog/model.py): one older than its rule's
timeout is hung, reported once as `process.hung`, and in kill mode taken down the stop
ladder (aiwgd/watchdog/stop.py, in a thread) then recorded in kills.jsonl and
announced as `process.killed`. The daemon, its ancestors, its process trees and what
carries its mark are spared whatever their age.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from pathlib import Path
from typing import Any

from aiwgd.config import Config
from aiwgd.config.watchdog import WatchdogSection
from aiwgd.events.router import EventRouter
from aiwgd.lifecycle import Subsystem
from aiwgd.procs.kills import KillLog
from aiwgd.procs.registry import ChildRegistry
from aiwgd.watchdog.model import Tracked, Verdict
from aiwgd.watchdog.scan import Found, Rule, Scan, age_of, scan
from aiwgd.watchdog.stop import Stopped, stop_tree

__all__ = ["Watchdog"]

log = logging.getLogger("aiwgd.watchdog")

SOURCE = "watchdog"
# watchdog.list scans again when its last scan is older than this: its answer is
# current without a burst of calls each paying for a scan.
LIST_FRESH_S = 1.0
# Killed processes stay in watchdog.list this long (then only in the kill log).
RECENT_KILLS_S = 600.0
RECENT_KILLS_MAX = 50

V = Verdict


def compile_rules(section: WatchdogSection) -> list[Rule]:
    return [Rule(r.name, re.compile(r.match), r.timeout_s) for r in section.rules]


class Watchdog(Subsystem):
    name = "watchdog"

    def __init__(
        self,
        router: EventRouter,
        children: ChildRegistry,
        root: Path,
        kills: KillLog,
        section: WatchdogSection,
    ) -> None:
        self.router = router
        self.children = children
        self.root = root
        self.kills = kills
        self.section = section
        self.rules = compile_rules(section)
        self.tracked: dict[tuple[int, float], Tracked] = {}
        self.recent: deque[tuple[float, Tracked]] = deque(maxlen=RECENT_KILLS_MAX)
        self.scans = 0
        self.killed = 0
        self.kill_failures = 0
        self.reported = 0
        self.last_scan_at: float | None = None  # wall clock, for people
        self.last_scan_mono: float | None = None  # for "is it fresh"
        self.last_scan_s: float | None = None
        self.last_error: str | None = None
        self._lock = asyncio.Lock()  # one scan and merge at a time (loop and list)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._killers: set[asyncio.Task[None]] = set()

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="watchdog")

    async def stop(self, fast: bool = False) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # A kill under way finishes (bounded by grace_s and the SIGKILL wait): a hung
        # process half stopped would be neither running nor recorded. A fast stop does
        # not wait for it.
        if self._killers and not fast:
            await asyncio.gather(*self._killers, return_exceptions=True)

    async def apply_config(self, config: Config) -> None:
        self.section = config.watchdog
        self.rules = compile_rules(self.section)
        if not self.section.enabled:  # nothing it shows while off may be stale later
            self.tracked = {k: t for k, t in self.tracked.items() if t.verdict is V.KILLING}
        self._wake.set()  # a new interval applies now, not after the old one

    def status(self) -> dict[str, Any]:
        counts = {v: 0 for v in Verdict}
        for t in self.tracked.values():
            counts[t.verdict] += 1
        out: dict[str, Any] = {
            "state": "running" if self.section.enabled else "disabled",
            "enabled": self.section.enabled,
            "mode": self.section.mode,
            "scope": self.section.scope,
            "interval_s": self.section.interval_s,
            "last_scan_at": self.last_scan_at,
            "last_scan_ms": None if self.last_scan_s is None else round(self.last_scan_s * 1000, 1),
            "scans": self.scans,
            "candidates": len(self.tracked),
            "watched": counts[V.WATCHED],
            "spared": counts[V.SPARED],
            "hung": counts[V.HUNG] + counts[V.KILL_FAILED],
            "reported": self.reported,
            "killed": self.killed,
            "kill_failures": self.kill_failures,
        }
        if self.last_error:
            out["last_error"] = self.last_error
        return out

    # ---- scanning --------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            # The first scan waits one interval: nothing started with the daemon is hung.
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                timeout = self.section.interval_s if self.section.enabled else None
                await asyncio.wait_for(self._wake.wait(), timeout)
                continue  # woken by a reload: wait the (new) interval from now
            try:
                await self.scan_now()
            except Exception as exc:  # a bad scan must not end the watchdog
                self.last_error = f"scan failed: {exc}"
                log.exception("watchdog scan failed")

    async def scan_now(self) -> None:
        """Scan, judge every candidate, report and (kill mode) start the kills."""
        if not self.section.enabled:
            return
        async with self._lock:
            children = self._registered()
            result = await asyncio.to_thread(
                scan, self.rules, self.root, self.section.scope == "project", children
            )
            self._merge(result)

    def _registered(self) -> dict[int, float | None]:
        """The live children and their known descendants (read here, on the loop: the
        registry is changed from the loop only)."""
        out: dict[int, float | None] = {}
        for entry in self.children:
            out[entry.pid] = entry.child.create_time
            out.update(entry.child.known)
        return out

    def _merge(self, result: Scan) -> None:
        self.scans += 1
        self.last_scan_at = time.time()
        self.last_scan_mono = time.monotonic()
        self.last_scan_s = result.duration_s
        self.last_error = None
        seen: set[tuple[int, float]] = set()
        for found in result.found:
            key = (found.pid, found.create_time)
            seen.add(key)
            tracked = self.tracked.get(key)
            if tracked is None:
                tracked = self.tracked[key] = Tracked(found, V.WATCHED)
            else:
                tracked.found = found
            self._judge(tracked)
        for key in [k for k, t in self.tracked.items() if k not in seen]:
            if self.tracked[key].verdict is not V.KILLING:  # its killer forgets it
                del self.tracked[key]

    def _judge(self, t: Tracked) -> None:
        f = t.found
        if t.verdict in (V.KILLING, V.KILLED):
            return
        if f.spared is not None:
            if t.verdict is not V.KILL_FAILED:
                t.set_verdict(V.SPARED)
            return
        if t.verdict in (V.WATCHED, V.SPARED, V.HUNG):
            t.set_verdict(V.HUNG if f.age_s >= f.timeout_s else V.WATCHED)
        if t.verdict is V.HUNG and not t.reported:
            t.reported = True
            self.reported += 1
            log.warning("hung process", extra={"pid": f.pid, "rule": f.rule, "age_s": f.age_s})
            self.router.publish(
                "process.hung",
                {
                    "pid": f.pid,
                    "command": f.command,
                    "age_s": round(f.age_s, 3),
                    "rule": f.rule,
                    "timeout_s": f.timeout_s,
                    "cwd": f.cwd,
                },
                SOURCE,
            )
        if self.section.mode == "kill" and t.verdict in (V.HUNG, V.KILL_FAILED):
            t.set_verdict(V.KILLING)
            task = asyncio.create_task(self._kill(t), name=f"watchdog-kill-{f.pid}")
            self._killers.add(task)
            task.add_done_callback(self._killers.discard)

    # ---- killing ---------------------------------------------------------------------
    async def _kill(self, t: Tracked) -> None:
        f = t.found
        try:
            stopped = await asyncio.to_thread(stop_tree, f.pid, f.create_time, self.section.grace_s)
        except Exception as exc:  # e.g. /proc unreadable: try again at the next scan
            self._failed(t, str(exc))
            log.exception("watchdog kill failed", extra={"pid": f.pid})
            return
        if not stopped.signals:
            if stopped.alive:  # not ours to signal after all: never report it again
                self._failed(t, "it could not be signalled")
            else:
                self.tracked.pop(t.key, None)  # it ended by itself before the first signal
            return
        if not stopped.killed:
            self._failed(t, "still running after SIGKILL")
            return
        t.signals = stopped.signals
        t.set_verdict(V.KILLED)
        self.killed += 1
        self.tracked.pop(t.key, None)
        self.recent.append((time.monotonic(), t))
        await self._record(f, stopped)

    def _failed(self, t: Tracked, error: str) -> None:
        t.error = error
        t.set_verdict(V.KILL_FAILED)
        self.kill_failures += 1
        self.last_error = f"pid {t.found.pid}: {error}"

    async def _record(self, f: Found, stopped: Stopped) -> None:
        record: dict[str, Any] = {
            "time": time.time(),
            "kind": "watchdog",
            "pid": f.pid,
            "command": f.command,
            "age_s": round(age_of(f.create_time), 3),
            "rule": f.rule,
            "timeout_s": f.timeout_s,
            "cwd": f.cwd,
            "signals": stopped.signals,
            "processes": stopped.processes,
        }
        if stopped.survivors:  # of its tree: the record says what is still running
            record["survivors"] = stopped.survivors
        log.warning(
            "killed a hung process",
            extra={"pid": f.pid, "rule": f.rule, "signals": stopped.signals},
        )
        # The line is written before the event: whoever reacts to the event finds it.
        try:
            await asyncio.to_thread(self.kills.append, record)
        except OSError as exc:
            self.last_error = f"cannot write {self.kills.path}: {exc}"
            log.error("cannot write the kill log", extra={"error": str(exc)})
        self.router.publish(
            "process.killed",
            {k: v for k, v in record.items() if k not in ("time", "processes", "survivors")},
            SOURCE,
        )

    # ---- answers ---------------------------------------------------------------------
    async def candidates(self) -> dict[str, Any]:
        """watchdog.list: every candidate and its verdict, after a fresh scan."""
        fresh = self.last_scan_mono is not None and (
            time.monotonic() - self.last_scan_mono < LIST_FRESH_S
        )
        if not fresh:
            await self.scan_now()
        now = time.monotonic()
        recent = [t for at, t in self.recent if now - at < RECENT_KILLS_S]
        rows = [t.to_dict() for t in [*self.tracked.values(), *recent]]
        rows.sort(key=lambda r: -r["age_s"])
        return {
            "enabled": self.section.enabled,
            "mode": self.section.mode,
            "scope": self.section.scope,
            "scanned_at": self.last_scan_at,
            "processes": rows,
        }

    async def kill_log(self, limit: int) -> list[dict[str, Any]]:
        """watchdog.kills: the kill log, newest first."""
        records = await asyncio.to_thread(self.kills.read, limit)
        return records[::-1]
