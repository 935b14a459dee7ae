"""What the schedule.* methods answer, as types (published by rpc.discover)."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, TypedDict

Iso = Annotated[str, "an ISO 8601 time with its UTC offset"]


class JobStatus(TypedDict):
    id: str
    cron: str
    timezone: str
    action: Annotated[str | dict[str, Any], "a label, or the action object"]
    enabled: Annotated[bool, "in effect now: configured_enabled unless overridden"]
    configured_enabled: bool
    override: Annotated[bool | None, "schedule.enable/disable's switch (kept on restart)"]
    overlap: str
    catch_up: bool
    next_fire: Iso | None
    last_fire: Iso | None
    last_run_at: Annotated[float | None, "Unix time"]
    last_result: str | None
    running: Annotated[list[str], "the runs going (their task ids where they have one)"]
    queued: Annotated[int, "runs waiting behind them (overlap: queue)"]
    fired: int
    skipped: int


class ScheduleList(TypedDict):
    enabled: Annotated[bool, "schedule.enabled"]
    jobs: list[JobStatus]


class Fired(TypedDict):
    """What one run of a job did: fired, or held back by its overlap policy."""

    job_id: str
    fired: bool
    scheduled_for: Iso
    manual: bool
    catch_up: bool
    event_id: NotRequired[Annotated[str, "the cron.fired event (when fired)"]]
    queued: NotRequired[Annotated[bool, "waits for the running run (overlap: queue)"]]
    skipped: NotRequired[Annotated[bool, "dropped: the previous run is still going"]]
    running: NotRequired[list[str]]


class JobSwitched(TypedDict):
    job_id: str
    enabled: bool
    next_fire: Iso | None
