"""The cron scheduler: one timer for the soonest job, `cron.fired` events, job actions.

The loop sleeps until the soonest next fire time (aiwgd.schedule.cronmath, pure
functions of `now`), fires what is due, recomputes, and sleeps again; reload and
enable/disable wake it early, stop cancels it. Sleeps are capped at MAX_SLEEP_S only so
a wall-clock jump (a suspended laptop, an NTP step) is noticed: waking re-reads the
clock, it never polls jobs. After a long sleep only the latest due run fires (missed
ones are not replayed); `catch_up` jobs also fire one missed run at start. Last fire
times live in `.aiwg/daemon/runtime.json` ("schedule" section), so restarts keep them.

A job's `action` is a label (only carried in `cron.fired`) or an action object, run by
the job's executor subscription "schedule:<job id>" on the router (retries with
backoff, then the dead-letter queue; `ActionRunner.attempt` gives the verdict) with
the `cron.fired` event as its template context. A run lasts until its action
finishes, or for a task action until the task reaches a terminal state (followed by
aiwgd.actions.outcome.StartedTasks, "schedule:tasks"); `overlap` decides what a fire
does while a run is still going: skip (publish `cron.skipped`), queue (run afterwards;
at most MAX_QUEUED wait, the oldest gives way) or allow. The runs going and the fires
waiting are the job's RunGate (aiwgd.actions.overlap), the mechanism rules use too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiwgd import errors
from aiwgd.actions.outcome import StartedTasks, Verdict
from aiwgd.actions.overlap import Admission
from aiwgd.infra.runtime_state import read_section, write_section
from aiwgd.lifecycle import Subsystem
from aiwgd.schedule.cronmath import latest_at_or_before, missed_run, next_after, zone
from aiwgd.schedule.jobs import MAX_QUEUED, JobState, action_json, instant, iso, ts

if TYPE_CHECKING:
    from pathlib import Path

    from aiwgd.actions.runner import ActionRunner
    from aiwgd.config import Config
    from aiwgd.config.model import ScheduleJob
    from aiwgd.events.model import Event
    from aiwgd.events.router import EventRouter

log = logging.getLogger("aiwgd.scheduler")

__all__ = ["Scheduler"]

MAX_SLEEP_S = 300.0
RUNTIME_KEY = "schedule"


class Scheduler(Subsystem):
    name = "scheduler"

    def __init__(
        self,
        router: EventRouter,
        runner: ActionRunner,
        config: Config,
        state_file: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.router = router
        self.runner = runner
        self.state_file = state_file
        self.clock = clock
        self.section = config.schedule
        self.jobs: dict[str, JobState] = {}
        # The tasks that job runs submitted, each owned by (job id, run id), until they end.
        self.tasks: StartedTasks[tuple[str, str]] = StartedTasks(
            router, "schedule:tasks", "schedule", self._task_ended
        )
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        saved = read_section(self.state_file, RUNTIME_KEY) if self.state_file else {}
        now = self.now()
        self._set_jobs(self.section.jobs, now, saved.get("jobs") or {})
        self.tasks.start()
        if self.section.enabled:
            for js in self.jobs.values():
                if js.job.catch_up and js.enabled:
                    self._catch_up(js, now)
        self._save()
        self._loop_task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self, fast: bool = False) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        self.tasks.stop()
        for js in self.jobs.values():
            if js.executor is not None:
                self.router.unsubscribe(js.executor)
        self._save()

    async def apply_config(self, config: Config) -> None:
        was_on, self.section = self.section.enabled, config.schedule
        now = self.now()
        if not was_on:  # switched on by this reload: what it missed while off stays missed
            for js in self.jobs.values():
                js.after = now
        self._set_jobs(config.schedule.jobs, now, {})
        self._save()
        self._wake.set()
        log.info("schedule reloaded", extra={"jobs": len(self.jobs)})

    def _set_jobs(self, jobs: list[ScheduleJob], now: datetime, saved: dict[str, Any]) -> None:
        """Swap job definitions by id; kept jobs keep their runs, history and switches."""
        new: dict[str, JobState] = {}
        for job in jobs:
            js = self.jobs.pop(job.id, None)
            if js is None:
                js = self._restore(job, now, saved.get(job.id) or {})
            elif (js.job.cron, js.job.timezone) != (job.cron, job.timezone):
                js.tz, js.after = zone(job.timezone), now  # a new timetable starts now
            elif job.enabled and not js.enabled and js.override is None:
                js.after = now  # switched on by this reload: no make-up run
            js.job = job
            if js.runs_action and js.executor is None:
                js.executor = self.router.subscribe(
                    [], self._executor(job.id), f"schedule:{job.id}"
                )
            elif not js.runs_action and js.executor is not None:  # became a label
                self.router.unsubscribe(js.executor)
                js.executor = None
            self._plan(js)
            new[job.id] = js
        for gone in self.jobs.values():
            if gone.executor is not None:
                self.router.unsubscribe(gone.executor)
        self.jobs = new

    def _restore(self, job: ScheduleJob, now: datetime, saved: dict[str, Any]) -> JobState:
        js = JobState(job, zone(job.timezone), now, float(saved.get("since") or now.timestamp()))
        if isinstance(saved.get("last_fire"), (int, float)):
            js.last_fire = datetime.fromtimestamp(saved["last_fire"], UTC).astimezone(js.tz)
        js.last_run_at = saved.get("last_run_at")
        js.last_result = saved.get("last_result")
        if isinstance(saved.get("enabled"), bool):
            js.override = saved["enabled"]
        return js

    def _plan(self, js: JobState) -> None:
        after = js.after if js.last_fire is None else max(js.after, js.last_fire, key=instant)
        js.next_fire = next_after(js.job.cron, js.tz, after)

    def _catch_up(self, js: JobState, now: datetime) -> None:
        since = datetime.fromtimestamp(js.since, UTC)
        baseline = since if js.last_fire is None else max(since, js.last_fire, key=instant)
        missed = missed_run(js.job.cron, js.tz, baseline, now)
        if missed is not None:
            log.info(
                "catching up a missed run",
                extra={"job_id": js.job.id, "scheduled_for": missed.isoformat()},
            )
            js.last_fire = missed
            self._trigger(js, missed, catch_up=True)

    # ---- the timer -------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self.now()
            try:
                self._fire_due(now)
                delay = self._delay(now)
            except Exception:  # keep the timer alive, and never spin on a bug
                log.exception("scheduler tick failed")
                delay = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _delay(self, now: datetime) -> float:
        soonest = self.soonest()
        if soonest is None:
            return MAX_SLEEP_S
        return min(max((soonest - now).total_seconds(), 0.0), MAX_SLEEP_S)

    def soonest(self) -> datetime | None:
        if not self.section.enabled:
            return None
        times = [js.next_fire for js in self.jobs.values() if js.enabled and js.next_fire]
        # By instant: comparing two times of one zone ignores fold.
        return min(times, key=instant) if times else None

    def _fire_due(self, now: datetime) -> None:
        if not self.section.enabled:
            return
        fired = False
        for js in list(self.jobs.values()):
            if not js.enabled or js.next_fire is None or js.next_fire > now:
                continue
            try:
                # The latest due time: after a suspend, one run, not one per missed slot.
                scheduled = latest_at_or_before(js.job.cron, js.tz, now)
                js.last_fire = scheduled
                js.next_fire = next_after(js.job.cron, js.tz, scheduled)
                self._trigger(js, scheduled)
            except Exception as exc:  # never a hot loop: this job stops until a reload
                js.next_fire = None
                js.last_result = f"error: {exc}; the job is paused until the next reload"
                log.exception("job fire failed", extra={"job_id": js.job.id})
            fired = True
        if fired:
            self._save()

    # ---- firing ----------------------------------------------------------------------
    def _trigger(
        self, js: JobState, scheduled: datetime, manual: bool = False, catch_up: bool = False
    ) -> dict[str, Any]:
        """Fire one run of a job now, subject to its overlap policy (aiwgd.actions.overlap)."""
        info = {"scheduled_for": scheduled.isoformat(), "manual": manual, "catch_up": catch_up}
        if js.runs_action:
            running = js.gate.labels()
            admission, dropped = js.gate.admit(js.job.overlap, info)
            if admission is Admission.SKIP:
                js.skipped += 1
                js.last_result = f"skipped: previous run still running ({', '.join(running)})"
                self.router.publish(
                    "cron.skipped", {"job_id": js.job.id, **info, "running": running}, "scheduler"
                )
                log.info(
                    "job skipped; previous run still running",
                    extra={"job_id": js.job.id, "running": running},
                )
                return {"fired": False, "skipped": True, "running": running, **info}
            if admission is not Admission.START:  # queue
                js.last_result = f"queued behind {', '.join(running)}"
                if dropped is not None:  # the oldest waiting run gives way to this one
                    js.skipped += 1
                    js.last_result += f" (queue full: {MAX_QUEUED}; the oldest gave way)"
                return {"fired": False, "queued": True, **info}
        return self._start_run(js, info)

    def _start_run(self, js: JobState, info: dict[str, Any]) -> dict[str, Any]:
        action = action_json(js.job.action)
        event = self.router.publish(
            "cron.fired", {"job_id": js.job.id, "action": action, **info}, "scheduler"
        )
        js.fired += 1
        js.last_run_at = time.time()
        if not js.runs_action:
            js.last_result = "fired"
        else:
            js.gate.begin(event.id)
            js.last_result = "running"
            assert js.executor is not None
            if not self.router.deliver(js.executor, event):
                self._finish(js, event.id, "failed: the job's executor queue is full")
        return {"fired": True, "event_id": event.id, **info}

    def _executor(self, job_id: str) -> Callable[[Event], Any]:
        async def run(event: Event) -> None:
            await self._execute(job_id, event)

        return run

    async def _execute(self, job_id: str, event: Event) -> None:
        js = self.jobs.get(job_id)
        if js is None or isinstance(js.job.action, str):
            return  # removed or turned into a label by a reload
        run_id = event.id
        if run_id not in js.gate.running:  # a dead letter replayed: a run again
            js.gate.begin(run_id)
        attempt = js.attempts[run_id] = js.attempts.get(run_id, 0) + 1
        meta = {"job_id": job_id, "event_id": run_id}
        out = await self.runner.attempt(js.job.action, event.to_dict(), meta, "schedule", attempt)
        task_id = out.task_id
        if out.verdict is Verdict.RETRY:
            js.last_result = f"retrying (attempt {attempt} failed: {out.error})"
        elif out.verdict is not Verdict.SUCCEEDED:
            self._finish(js, run_id, f"failed: {out.error}")
        elif task_id is None:
            self._finish(js, run_id, "succeeded")
        else:
            ended = self.tasks.track(task_id, (job_id, run_id))
            if ended is not None:
                self._finish(js, run_id, f"task {task_id} {ended}")
            else:
                js.gate.begin(run_id, task_id)
                js.last_result = f"running: task {task_id}"
        # Raises a failure: the router retries it, or dead-letters it after the last
        # attempt; a hopeless one (a missing field) is not dead-lettered.
        out.hand_back()

    def _task_ended(self, owner: tuple[str, str], task_id: str, state: str) -> None:
        js = self.jobs.get(owner[0])
        if js is not None:
            self._finish(js, owner[1], f"task {task_id} {state}")

    def _finish(self, js: JobState, run_id: str, result: str) -> None:
        js.attempts.pop(run_id, None)
        js.last_result = result
        waiting = js.gate.end(run_id)
        if waiting is not None:
            self._start_run(js, waiting)
        self._save()

    # ---- RPC-facing ------------------------------------------------------------------
    def get(self, job_id: str) -> JobState:
        js = self.jobs.get(job_id)
        if js is None:
            known = ", ".join(self.jobs) or "none configured"
            raise errors.NotFound(f"no scheduled job with id {job_id!r} (jobs: {known})")
        return js

    def run_now(self, job_id: str) -> dict[str, Any]:
        js = self.get(job_id)
        if js.runs_action and js.gate.busy and js.job.overlap == "skip":
            running = ", ".join(js.gate.labels())
            raise errors.Conflict(
                f"job {job_id!r} is still running ({running}) and its overlap policy is "
                '"skip"; wait for it to finish or set overlap to "queue" or "allow"'
            )
        result = self._trigger(js, self.now().astimezone(js.tz), manual=True)
        self._save()
        return {"job_id": job_id, **result}

    def set_enabled(self, job_id: str, enabled: bool) -> dict[str, Any]:
        js = self.get(job_id)
        if enabled and not js.enabled:
            js.after = self.now()  # runs missed while disabled are not made up
        js.override = enabled
        self._plan(js)
        self._wake.set()
        if not self._save():
            raise errors.Unavailable(
                f"job {job_id!r} switched, but the switch could not be "
                "saved: it will not survive a restart (see the log)"
            )
        return {"job_id": job_id, "enabled": js.enabled, "next_fire": self._next(js)}

    def _next(self, js: JobState) -> str | None:
        return iso(js.next_fire) if self.section.enabled and js.enabled else None

    def describe(self, js: JobState) -> dict[str, Any]:
        job = js.job
        return {
            "id": job.id,
            "cron": job.cron,
            "timezone": getattr(js.tz, "key", str(js.tz)),
            "action": action_json(job.action),
            "enabled": js.enabled,
            "configured_enabled": job.enabled,
            "override": js.override,
            "overlap": job.overlap,
            "catch_up": job.catch_up,
            "next_fire": self._next(js),
            "last_fire": iso(js.last_fire),
            "last_run_at": js.last_run_at,
            "last_result": js.last_result,
            "running": js.gate.labels(),
            "queued": len(js.gate.waiting),
            "fired": js.fired,
            "skipped": js.skipped,
        }

    def status(self) -> dict[str, Any]:
        return {
            "state": "running" if self.section.enabled else "disabled",
            "jobs": len(self.jobs),
            "next_fire": iso(self.soonest()),
        }

    def _save(self) -> bool:
        """Persist last fires and switches; False (and a log line) if the disk refuses."""
        if self.state_file is None:
            return True
        jobs = {
            jid: {
                "since": js.since,
                "last_fire": ts(js.last_fire),
                "last_run_at": js.last_run_at,
                "last_result": js.last_result,
                "enabled": js.override,
            }
            for jid, js in self.jobs.items()
        }
        try:
            write_section(self.state_file, RUNTIME_KEY, {"jobs": jobs})
        except OSError as exc:
            log.error("cannot persist schedule state", extra={"error": str(exc)})
            return False
        return True
