"""Restart pacing: exponential backoff with jitter, and the start limit (pure, monotonic)."""

from __future__ import annotations

import random
import time
from collections import deque

from aiwgd.config.services import Backoff, StartLimit


class Pacer:
    """How long to wait before the next restart, and whether to give up.

    `n` counts restarts in a row; it goes back to 0 once an instance stayed up
    `reset_after_s` (a crash a day must not end up at max_s). The start limit counts
    starts (monotonic times) in a sliding window.
    """

    def __init__(self, backoff: Backoff, limit: StartLimit) -> None:
        self.backoff = backoff
        self.limit = limit
        self.n = 0
        self.starts: deque[float] = deque()

    def configure(self, backoff: Backoff, limit: StartLimit) -> None:
        self.backoff, self.limit = backoff, limit

    def reset(self) -> None:
        """A start by hand: the count and the start limit begin again."""
        self.n = 0
        self.starts.clear()

    def note_start(self, now: float | None = None) -> bool:
        """Record a start; False when it would be more than `burst` within `interval_s`."""
        now = time.monotonic() if now is None else now
        while self.starts and now - self.starts[0] > self.limit.interval_s:
            self.starts.popleft()
        if len(self.starts) >= self.limit.burst:
            return False
        self.starts.append(now)
        return True

    def note_uptime(self, uptime_s: float) -> None:
        if uptime_s >= self.backoff.reset_after_s:
            self.n = 0

    def next_delay(self) -> float:
        """The delay before the next restart (and count it)."""
        b = self.backoff
        base = min(b.max_s, b.initial_s * b.multiplier**self.n)
        self.n += 1
        spread = base * b.jitter
        return max(0.0, base + random.uniform(-spread, spread))
