"""The resource monitor subsystem: one sampler over every registered child.

Every `monitor.interval_s` it samples each registered task and service process tree
(psutil, in a worker thread: never on the event loop), keeps a short history per child,
puts the latest usage on the registry entry (`ChildRegistry.usage_of`, for task.get),
and judges the tree against the child's limits. Over one, it tells the child's owner
once (`on_over(reason, detail)`, on the loop): the owner takes it down the stop ladder
and applies its own policy (a task fails and may retry; a service restarts). The kill
is published as `process.killed` and appended to the kill log (.aiwg/daemon/kills.jsonl)
when it is decided: the owner's stop follows at once.

Collaborators only: its config section, the child registry, the events publisher, the
kill log and the project root (for the disk shown by monitor.system).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiwgd.config import Config
from aiwgd.config.monitor import MonitorSection
from aiwgd.lifecycle import Subsystem
from aiwgd.monitor.judge import Verdict, judge
from aiwgd.monitor.sampler import Sampler, targets
from aiwgd.monitor.system import cpu_per_core, system_snapshot
from aiwgd.monitor.track import Track
from aiwgd.procs.kills import KillLog
from aiwgd.procs.registry import ChildRegistry, LiveChild

log = logging.getLogger("aiwgd.monitor")

Publish = Callable[[str, dict[str, Any], str], object]


class Monitor(Subsystem):
    name = "monitor"

    def __init__(
        self,
        config: MonitorSection,
        registry: ChildRegistry,
        publish: Publish,
        kill_log: KillLog,
        root: Path,
    ) -> None:
        self.config = config
        self.registry = registry
        self.publish = publish
        self.kill_log = kill_log
        self.root = root
        self.sampler = Sampler()
        self._tracks: dict[int, Track] = {}  # by leader PID; the entry tells reuse apart
        self._per_core: list[float] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # a reload with a new interval takes effect now
        # Set when a child registers into an empty registry: only the idle wait below
        # listens (a reload's _wake would make every such change a sample).
        self._busy = asyncio.Event()
        registry.when_busy(self._busy.set)
        self.samples = 0
        self.kills = 0
        self.errors = 0

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        if self.config.enabled:
            self._task = asyncio.create_task(self._loop(), name="monitor")

    async def stop(self, fast: bool = False) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def apply_config(self, config: Config) -> None:
        old, self.config = self.config, config.monitor
        if old.enabled and not self.config.enabled:
            await self.stop()
        elif self.config.enabled and self._task is None:
            await self.start()
        self._wake.set()

    def status(self) -> dict[str, Any]:
        return {
            "state": "running" if self._task is not None else "disabled",
            "interval_s": self.config.interval_s,
            "children": len(self.registry),
            "sampled": len(self._tracks),
            "samples": self.samples,
            "kills": self.kills,
            "errors": self.errors,
        }

    # ---- sampling --------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.tick()
            except Exception:
                # One bad sample (a psutil surprise) must not end the monitoring.
                self.errors += 1
                log.exception("monitor sample failed")
            left = self.config.interval_s - (time.monotonic() - started)
            self._wake.clear()
            if not self.registry and not self._tracks:
                # Nothing to sample: sleep until a child registers (or a reload), not
                # a wakeup every interval of an idle daemon's day.
                self._busy.clear()
                if not self.registry:
                    await _first(self._busy, self._wake)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, left))

    async def tick(self) -> None:
        """Sample every registered child once and act on what is over a limit."""
        entries = list(self.registry)
        if not entries and not self._tracks:
            # Nothing to watch: no thread hop while idle. monitor.system then measures
            # CPU itself (a short interval) instead of showing a stale one.
            self._per_core = None
            return
        what = targets(entries)

        def blocking() -> tuple[list[Any], list[float]]:
            return self.sampler.sample(what), cpu_per_core()

        usages, self._per_core = await asyncio.to_thread(blocking)
        now = time.monotonic()
        self.samples += 1
        live: set[int] = set()
        for entry, usage in zip(entries, usages, strict=True):
            if not self.registry.holds(entry):
                continue  # gone while it was sampled
            live.add(entry.pid)
            track = self._tracks.get(entry.pid)
            if track is None or track.entry is not entry:
                track = self._tracks[entry.pid] = Track(entry, self.config.history)
            track.add(usage, now)
            entry.usage = track.usage()
            if entry.limits is None or entry.on_over is None or track.told:
                continue
            if entry.child.returncode is not None:
                continue  # its leader already ended: its owner is finishing it
            if track.paused:
                continue  # stopped (task.pause): it can do nothing until continued
            verdict = judge(entry.limits, usage, track.facts(now))
            if verdict is not None:
                track.told = True
                await self._over(entry, verdict)
        for pid in [p for p in self._tracks if p not in live]:
            del self._tracks[pid]

    async def _over(self, entry: LiveChild, verdict: Verdict) -> None:
        kind, _, name = entry.owner.partition(":")
        record: dict[str, Any] = {
            "kind": kind,
            "id" if kind == "task" else "name": name,
            "owner": entry.owner,
            "pid": entry.pid,
            "reason": verdict.reason,
            "detail": verdict.detail,
            "value": verdict.value,
            "limit": verdict.limit,
        }
        # Not extra=record: "name" is a LogRecord attribute of its own.
        log.warning(
            "over a limit: stopping",
            extra={"owner": entry.owner, "pid": entry.pid, "detail": verdict.detail},
        )
        self.kills += 1
        assert entry.on_over is not None
        try:
            entry.on_over(verdict.reason, verdict.detail)
        except Exception:
            log.exception("the owner could not act on a limit", extra={"owner": entry.owner})
        self.publish("process.killed", record, "monitor")
        try:
            await asyncio.to_thread(self.kill_log.append, dict(record))
        except OSError as exc:
            log.error("cannot write the kill log", extra={"error": str(exc), "owner": entry.owner})

    # ---- queries ---------------------------------------------------------------------
    def processes(self) -> list[dict[str, Any]]:
        """Every registered child with its latest usage (None fields: not sampled yet)."""
        now = time.monotonic()
        out = []
        for entry in self.registry:
            track = self._tracks.get(entry.pid)
            if track is None or track.entry is not entry:
                track = Track(entry, 1)  # registered since the last sample
            out.append(track.view(now))
        return out

    async def system(self) -> dict[str, Any]:
        return await asyncio.to_thread(system_snapshot, self.root, self._per_core)


async def _first(*events: asyncio.Event) -> None:
    """Return once any of `events` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
