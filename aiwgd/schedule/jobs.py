"""One scheduled job's runtime state, and small helpers for its JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from aiwgd.actions.overlap import RunGate
from aiwgd.config.schema import dump

if TYPE_CHECKING:
    from aiwgd.config.model import ScheduleJob
    from aiwgd.events.router import Subscription

__all__ = ["MAX_QUEUED", "JobState", "action_json", "instant", "iso", "ts"]

MAX_QUEUED = 100  # runs waiting behind a running one (overlap: queue)


def instant(t: datetime) -> float:
    """A sort key by instant: comparing two aware times of one zone ignores fold."""
    return t.timestamp()


def ts(t: datetime | None) -> float | None:
    return None if t is None else t.timestamp()


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def action_json(action: Any) -> Any:
    """A job's action as JSON: the label, or the action object without unset fields."""
    if isinstance(action, str):
        return action
    return {k: v for k, v in dump(action).items() if v is not None}


@dataclass
class JobState:
    job: ScheduleJob
    tz: tzinfo
    after: datetime  # only fire times strictly after this are due
    since: float  # when this job id was first seen (the catch-up baseline)
    next_fire: datetime | None = None
    last_fire: datetime | None = None  # scheduled time of the last cron-timed run
    last_run_at: float | None = None
    last_result: str | None = None
    override: bool | None = None  # enabled/disabled over RPC (persisted)
    # Runs going (run id = the cron.fired event id) and fires waiting (overlap: queue).
    gate: RunGate[dict[str, Any]] = field(default_factory=lambda: RunGate(MAX_QUEUED))
    attempts: dict[str, int] = field(default_factory=dict)
    executor: Subscription | None = None
    fired: int = 0
    skipped: int = 0

    @property
    def enabled(self) -> bool:
        return self.job.enabled if self.override is None else self.override

    @property
    def runs_action(self) -> bool:
        return not isinstance(self.job.action, str)
