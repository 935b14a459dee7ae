"""What the watchdog knows about each candidate process, and its one transition table.

    watched  -> hung | spared       (older than its rule's timeout; became the daemon's)
    spared   -> watched | hung      (no longer in the daemon's trees, nor marked)
    hung     -> killing | watched   (kill mode; a reload gave its rule a longer timeout)
             | spared
    killing  -> killed | kill_failed
    kill_failed -> killing          (tried again at the next scan: e.g. stuck in D state)
    killed   (final)

A tracked process is keyed by (pid, create time) and forgotten once a scan no longer
sees it; a killed one is kept a while in the recent kills for `watchdog.list`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiwgd.watchdog.scan import Found

__all__ = ["TRANSITIONS", "Tracked", "Verdict", "describe_ok"]


class Verdict(StrEnum):
    WATCHED = "watched"
    SPARED = "spared"
    HUNG = "hung"
    KILLING = "killing"
    KILLED = "killed"
    KILL_FAILED = "kill_failed"


V = Verdict
TRANSITIONS: dict[Verdict, frozenset[Verdict]] = {
    V.WATCHED: frozenset({V.HUNG, V.SPARED}),
    V.SPARED: frozenset({V.WATCHED, V.HUNG}),
    V.HUNG: frozenset({V.KILLING, V.WATCHED, V.SPARED}),
    V.KILLING: frozenset({V.KILLED, V.KILL_FAILED}),
    V.KILL_FAILED: frozenset({V.KILLING}),
    V.KILLED: frozenset(),
}


def _minutes(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def describe_ok(age_s: float, timeout_s: float) -> str:
    """`ok (3 min of 5 min)`: how far a watched process is from its timeout."""
    return f"ok ({_minutes(age_s)} of {_minutes(timeout_s)})"


@dataclass
class Tracked:
    found: Found
    verdict: Verdict
    reported: bool = False  # process.hung published (once per process)
    signals: list[str] = field(default_factory=list)
    error: str | None = None  # why the last kill failed

    @property
    def key(self) -> tuple[int, float]:
        return (self.found.pid, self.found.create_time)

    def set_verdict(self, new: Verdict) -> None:
        if new is self.verdict:
            return
        if new not in TRANSITIONS[self.verdict]:
            raise ValueError(f"watchdog: {self.verdict} -> {new} is not a transition")
        self.verdict = new

    def verdict_text(self) -> str:
        f = self.found
        if self.verdict is V.WATCHED:
            return describe_ok(f.age_s, f.timeout_s)
        if self.verdict is V.SPARED:
            return f"spared: {f.spared}"
        if self.verdict is V.KILL_FAILED:
            return f"hung (kill failed: {self.error})"
        return str(self.verdict)

    def to_dict(self) -> dict[str, Any]:
        f = self.found
        return {
            "pid": f.pid,
            "command": f.command,
            "cwd": f.cwd,
            "rule": f.rule,
            "age_s": round(f.age_s, 3),
            "timeout_s": f.timeout_s,
            "verdict": self.verdict_text(),
            "state": str(self.verdict),
        }
