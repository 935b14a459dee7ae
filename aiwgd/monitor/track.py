"""What the monitor remembers of one registered child between samples: a short
history, since when its CPU has been over the limit, and whether it was told."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict
from typing import Any

from aiwgd.config.schema import dump
from aiwgd.monitor.judge import Facts, cpu_over
from aiwgd.monitor.sampler import Usage
from aiwgd.procs.registry import LiveChild


class Track:
    def __init__(self, entry: LiveChild, history: int) -> None:
        self.entry = entry
        self.samples: deque[tuple[float, int]] = deque(maxlen=history)  # (cpu %, rss)
        self.last: Usage | None = None
        self.last_mono: float | None = None
        self.cpu_over_since: float | None = None
        self.told = False  # on_over was called: once per child, the owner stops it
        # Paused (SIGSTOP, task.pause) time is neither runtime nor silence: a stopped
        # tree can do nothing, so its limits wait, and silence counts from the resume.
        self.paused_s = 0.0
        self.paused_since: float | None = None
        self.resumed_mono: float | None = None

    @property
    def paused(self) -> bool:
        return self.paused_since is not None

    def add(self, usage: Usage, now: float) -> None:
        if usage.stopped and self.paused_since is None:
            self.paused_since = now
        elif not usage.stopped and self.paused_since is not None:
            self.paused_s += now - self.paused_since
            self.paused_since, self.resumed_mono = None, now
            self.cpu_over_since = None
        self.last, self.last_mono = usage, now
        self.samples.append((usage.cpu_percent, usage.rss_bytes))
        limits = self.entry.limits
        if limits is not None and cpu_over(limits, usage):
            if self.cpu_over_since is None:
                self.cpu_over_since = now
        else:
            self.cpu_over_since = None

    def facts(self, now: float) -> Facts:
        over = None if self.cpu_over_since is None else now - self.cpu_over_since
        return Facts(self.runtime(now), self.silent(now), over)

    def runtime(self, now: float) -> float:
        paused = self.paused_s + (0.0 if self.paused_since is None else now - self.paused_since)
        return now - self.entry.registered_mono - paused

    def silent(self, now: float) -> float:
        since = self.entry.child.sink.last_output_mono
        if self.resumed_mono is not None:
            since = max(since, self.resumed_mono)
        return 0.0 if self.paused_since is not None else now - since

    def history(self) -> dict[str, Any]:
        """A summary of the kept samples (the samples themselves are not sent)."""
        if not self.samples:
            return {"samples": 0}
        cpu = [c for c, _ in self.samples]
        rss = [r for _, r in self.samples]
        return {
            "samples": len(self.samples),
            "cpu_avg": round(sum(cpu) / len(cpu), 1),
            "cpu_max": max(cpu),
            "rss_avg_bytes": sum(rss) // len(rss),
            "rss_max_bytes": max(rss),
        }

    def view(self, now: float | None = None) -> dict[str, Any]:
        """The child as `monitor.processes` shows it (usage fields None until sampled)."""
        now = time.monotonic() if now is None else now
        entry, u = self.entry, self.last
        kind, _, name = entry.owner.partition(":")
        return {
            "owner": entry.owner,
            "kind": kind,
            "name": name,
            "pid": entry.pid,
            "processes": None if u is None else u.processes,
            "cpu_percent": None if u is None else u.cpu_percent,
            "rss_bytes": None if u is None else u.rss_bytes,
            "fds": None if u is None else u.fds,
            "threads": None if u is None else u.threads,
            "runtime_s": round(self.runtime(now), 1),
            "last_output_s_ago": round(self.silent(now), 1),
            "sampled_s_ago": None if self.last_mono is None else round(now - self.last_mono, 2),
            "limits": None if entry.limits is None else dump(entry.limits),
            "history": self.history(),
        }

    def usage(self) -> dict[str, Any] | None:
        """The latest sample, for the owner's own view (e.g. task.get)."""
        if self.last is None:
            return None
        out = asdict(self.last)
        del out["owner"], out["stopped"]  # stopped: task.get says `paused` itself
        return out
