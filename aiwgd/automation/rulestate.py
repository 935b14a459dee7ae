"""One rule's runtime state: counters, the loop guard, held-back and waiting triggers.

The loop guard (`cooldown_s`, `max_per_minute`) decides whether a matched event may be
accepted now. `max_per_minute` drops what is over the limit: it is there to cut a
rule that triggers itself. `cooldown_s` only delays: the latest trigger it held back
is kept (`deferred`) and considered again when the cooldown ends, so the last save
of a burst is still acted on. Accepted executions then pass the rule's overlap gate
(aiwgd.actions.overlap): `gate.running` are the runs going, `gate.waiting` the one
execution waiting for them.

The counters and the last fire and result are written with every finished execution
to the history file (`snapshot()`), and read back at start (`restore()`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from aiwgd.actions.overlap import RunGate
from aiwgd.config.model import Rule

if TYPE_CHECKING:
    from aiwgd.automation.executions import Execution
    from aiwgd.events.model import Event
    from aiwgd.events.router import Subscription

__all__ = ["COUNTERS", "Held", "RuleState"]

COUNTERS = ("matched", "executed", "succeeded", "failed", "suppressed", "skipped", "replaced")


class Held(NamedTuple):
    """Why the loop guard held a trigger back, and when it may try again (None: never)."""

    reason: str
    retry_in: float | None


@dataclass
class RuleState:
    rule: Rule
    executor: Subscription | None = None
    matched: int = 0
    executed: int = 0
    succeeded: int = 0
    failed: int = 0
    suppressed: int = 0  # held back by the loop guard
    skipped: int = 0  # dropped by overlap skip, or superseded by a newer trigger
    replaced: int = 0  # runs whose task overlap replace cancelled
    last_fired_at: float | None = None
    last_result: str | None = None
    last_mono: float | None = None
    recent: deque[float] = field(default_factory=deque)  # monotonic accept times, 60 s window
    suppress_logged_at: float = 0.0
    gate: RunGate[tuple[Execution, Event]] = field(default_factory=RunGate)
    deferred: Event | None = None  # the latest trigger the cooldown held back
    timer: asyncio.TimerHandle | None = None  # wakes the engine when the cooldown ends

    def guard(self, now: float) -> Held | None:
        """None if the rule may act now (and records it), else why it is held back."""
        rule = self.rule
        if rule.cooldown_s and self.last_mono is not None:
            left = rule.cooldown_s - (now - self.last_mono)
            if left > 0:
                return Held(f"cooldown: {left:.1f}s of {rule.cooldown_s:g}s left", left)
        while self.recent and now - self.recent[0] >= 60.0:
            self.recent.popleft()
        if len(self.recent) >= rule.max_per_minute:
            why = f"max_per_minute: {rule.max_per_minute} executions in the last 60s"
            return Held(why, None)
        self.recent.append(now)
        self.last_mono = now
        return None

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}

    def snapshot(self) -> dict[str, Any]:
        """What a restart must not forget, stored with each history line."""
        return {
            "counts": self.counts(),
            "last_fired_at": self.last_fired_at,
            "last_result": self.last_result,
        }

    def restore(self, saved: dict[str, Any]) -> None:
        """Take back a snapshot(); anything malformed in it is ignored."""
        counts = saved.get("counts")
        if isinstance(counts, dict):
            for name in COUNTERS:
                value = counts.get(name)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    setattr(self, name, value)
        if isinstance(saved.get("last_fired_at"), (int, float)):
            self.last_fired_at = float(saved["last_fired_at"])
        if isinstance(saved.get("last_result"), str):
            self.last_result = saved["last_result"]

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.deferred = None
