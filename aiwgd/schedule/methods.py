"""RPC methods of the cron scheduler: schedule.*."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiwgd import errors
from aiwgd.config.schema import spec
from aiwgd.rpc.registry import Api, NoParams
from aiwgd.schedule.results import Fired, JobSwitched, ScheduleList

if TYPE_CHECKING:
    from aiwgd.schedule.scheduler import Scheduler

__all__ = ["register"]


@dataclass
class JobRef:
    id: str = spec(min_len=1, doc="the job's id in schedule.jobs")


def register(api: Api, sched: Scheduler) -> None:
    @api.method(
        "schedule.list",
        "Every job with its next fire time, last run and result.",
        result=ScheduleList,
    )
    async def list_jobs(ctx: Any, p: NoParams) -> dict[str, Any]:
        jobs = [sched.describe(js) for js in sched.jobs.values()]
        return {"enabled": sched.section.enabled, "jobs": jobs}

    @api.method(
        "schedule.run",
        "Fire a job now (its overlap policy applies).",
        JobRef,
        result=Fired,
        raises=(errors.NotFound, errors.Conflict),
    )
    async def run(ctx: Any, p: JobRef) -> dict[str, Any]:
        return sched.run_now(p.id)

    @api.method(
        "schedule.enable",
        "Switch a job on; survives restarts.",
        JobRef,
        result=JobSwitched,
        raises=(errors.NotFound, errors.Unavailable),
    )
    async def enable(ctx: Any, p: JobRef) -> dict[str, Any]:
        return sched.set_enabled(p.id, True)

    @api.method(
        "schedule.disable",
        "Switch a job off; survives restarts.",
        JobRef,
        result=JobSwitched,
        raises=(errors.NotFound, errors.Unavailable),
    )
    async def disable(ctx: Any, p: JobRef) -> dict[str, Any]:
        return sched.set_enabled(p.id, False)
