"""The supervisor: runs queued tasks under a concurrency cap, never losing one.

Public API (for RPC methods, automation and the scheduler):

    task = await supervisor.submit(spec, source)   # spec keys: prompt | command, agent,
        # priority, timeout_s, cwd, env, max_retries, metadata; returns the task as a
        # dict; bad specs raise aiwgd.errors RpcError subclasses (nothing is stored)
    await supervisor.cancel(id)     # queued: at once; running: down the stop ladder
    await supervisor.wait(id, timeout_s)    # the task once terminal (or at the timeout)
    supervisor.get(id) / supervisor.stats()

Scheduling: a heap ordered by (priority desc, arrival), started whenever a slot is
free. A slot is held from spawn until the process and everything it started is really
gone (aiwgd.procs), so `daemon.max_parallel_actions` is never exceeded; reload may
change the cap at any time (a lower cap lets running tasks finish). Every state
change goes through the store (which journals it and publishes the task.* event).
Retries: a failed or timed-out attempt with retries left goes back to queued with
`attempt + 1` after an exponential backoff (agent.retry_backoff_*). How one attempt
runs is an executor's business (aiwgd.tasks.executors: local child processes by
default); this module decides when attempts start and what their ends mean.

Shutdown: new submissions get ShuttingDown; running tasks may finish for up to
`daemon.stop_grace_seconds` (not at all on a fast stop), then go down the ladder and
are recorded interrupted, then requeued or failed (aiwgd.tasks.retries: the task's
on_interrupt, its retries); queued tasks stay queued on disk and run after the next start.

Crash safety: an attempt's `running` state is durable *before* its program starts, and
where it runs (the executor's `runner`) is recorded once it has run a moment, off the
critical path (aiwgd.tasks.runner_record); its processes carry the task's mark. So
after a kill -9 at any moment the next start finds every task that may have a process
running, and stops and counts it (aiwgd.tasks.crash_recovery).
A task submitted while a slot is free and nothing is queued before it starts at once:
its queued and running states are one journal line (one fsync before the spawn, not
two), which recovery reads like any running record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiwgd import errors
from aiwgd.agents.budget import AgentBudget
from aiwgd.agents.isolation import Isolation, IsolationFailed
from aiwgd.config import Config
from aiwgd.lifecycle import Lifecycle, Subsystem
from aiwgd.procs.child import Exit
from aiwgd.tasks.crash_recovery import recover
from aiwgd.tasks.executors.base import Attempt, Ending, EndReason, SpawnError, outcome
from aiwgd.tasks.executors.routing import Executors
from aiwgd.tasks.failsafe import FailSafe
from aiwgd.tasks.gates import Gates
from aiwgd.tasks.groups import Groups
from aiwgd.tasks.model import Task, TaskState
from aiwgd.tasks.pause import PauseControl, Pauses
from aiwgd.tasks.queries import TaskQueries
from aiwgd.tasks.queue import Queues
from aiwgd.tasks.retries import retry_delay
from aiwgd.tasks.runner_record import RunnerRecord
from aiwgd.tasks.slot import Slot, Slots
from aiwgd.tasks.store.store import TaskStore
from aiwgd.tasks.submissions import Submissions
from aiwgd.tasks.waiters import Waiters

log = logging.getLogger("aiwgd.supervisor")

S = TaskState
NO_EXIT = Exit(None, None)  # an attempt that ended before its program started
NOT_RUN = "cancelled before it ran"
UNTIMED = 10 * 365 * 86_400.0  # the executor's own timer; the pausable clock decides
# Counters since start, shown by task.stats and daemon.status.
TOTALS = "submitted started completed failed timed_out cancelled retried interrupted recovered"


class Supervisor(TaskQueries, Submissions, Subsystem):
    name = "supervisor"

    def __init__(
        self,
        config: Config,
        root: Path,
        store: TaskStore,
        lifecycle: Lifecycle,
        executor: Executors,
        usage_of: Callable[[str], dict[str, Any] | None] | None = None,
        agents: AgentBudget | None = None,
    ) -> None:
        self.config = config
        self.root = root
        self.store = store
        self.lifecycle = lifecycle
        self.executor = executor
        # A running task's latest resource usage, by owner ("task:<id>"): the monitor's.
        self._usage_of = usage_of
        self._queue = Queues(self._pump, self._executor_of)
        self._slots = Slots()
        self._waiters = Waiters()
        self._failsafe = FailSafe(store, self._recorded_failed)
        self._submitting = 0  # submissions whose queued record is on its way to disk
        self._accepting = False
        self.totals: dict[str, int] = dict.fromkeys(TOTALS.split(), 0)
        # What stream-json agents said and spent: run fields, budgets, held prompt tasks.
        self.agents = agents or AgentBudget(config, store, lambda *_: None)
        self.agents.bind(self._queue.push, self._pump)
        self.isolation = Isolation(lambda: self.config, root, store)  # worktrees, sessions
        # Queue control: dependencies, groups, pause/resume (aiwgd.tasks.gates, .pause).
        self.groups = Groups(lambda: self.config)
        self._gates = Gates(store, self.groups, lambda: self._slots.held)
        self.pauses = Pauses()
        self.pausing = PauseControl(
            self.pauses, self.groups, store, lambda: self._slots.held, self._pump
        )
        self._background: set[asyncio.Task[None]] = set()
        executor.set_current(self._current_attempt)

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        recovered, remote = await recover(self.store, self.executor)
        self.totals["recovered"] += recovered
        for task in remote:  # still running on a worker: followed again, not re-run
            slot = self._slots.take(task.id, task.executor)
            slot.job = asyncio.create_task(self._run(slot, task, reattach=True))
        self.agents.load()  # the day's agent spend so far, from the stored tasks
        for task in self.store.queued():  # creation order: FIFO within a priority
            self._queue.push(task.id, task.priority, task.retry_at, task.start_at)
        self._accepting = True
        self._warn_executors_gone()
        self._pump()
        self.isolation.start()

    async def stop(self, fast: bool = False) -> None:
        self._accepting = False
        self._queue.cancel_timers()
        for slot in list(self._slots.held.values()):
            if slot.executor is not None:  # remote: it goes on there; nothing to wait for
                slot.stop(EndReason.SHUTDOWN)
        jobs = {s.job for s in self._slots.held.values() if s.executor is None and s.job}
        if jobs and not fast:
            grace = self.config.daemon.stop_grace_seconds
            log.info("waiting for running tasks", extra={"running": len(jobs), "grace_s": grace})
            await self.lifecycle.drain(jobs, grace)
        self.pauses.proceed_all()  # a stopped process would not see the ladder's SIGTERM
        for slot in list(self._slots.held.values()):
            slot.stop(EndReason.SHUTDOWN)
        remaining = self._slots.jobs(closing=True)
        if remaining:
            await asyncio.gather(*remaining, return_exceptions=True)
        self._failsafe.cancel()
        await self.executor.close()
        self.agents.stop()
        self._waiters.notify_all()
        await self.isolation.stop()

    async def apply_config(self, config: Config) -> None:
        old = self.config.daemon.max_parallel_actions
        self.config = config
        self.executor.apply_config(config)
        self.agents.apply_config(config)  # a raised day budget lets held tasks start
        if config.daemon.max_parallel_actions != old:
            log.info(
                "concurrency cap changed",
                extra={"old": old, "new": config.daemon.max_parallel_actions},
            )
        self._warn_executors_gone()
        self._pump()

    def _warn_executors_gone(self) -> None:
        """Queued tasks for an executor the config no longer has wait for it (task.get
        says why): say so once per reload or start, not silently."""
        for name, queue in self._queue.by_executor.items():
            if name is not None and name not in self.config.executors and len(queue):
                log.warning(
                    "queued tasks wait for an executor that is not configured",
                    extra={"executor": name, "queued": len(queue)},
                )

    def _pump(self) -> None:
        """Start queued tasks while slots are free (called on every change)."""
        if not self._accepting:
            return
        self._queue.unpark(self._gates.blocked)  # e.g. a dependency or a group slot freed
        for failed_id, why in self._gates.failed():
            self._queue.discard(failed_id)
            job = asyncio.create_task(self._dependency_failed(failed_id, why))
            self._background.add(job)
            job.add_done_callback(self._background.discard)
        for executor, queue in self._queue.by_executor.items():
            cap = self.executor.cap(executor)
            while self._slots.count(executor) < cap:
                task_id = queue.pop(self._gates.hold)
                if task_id is None:
                    break
                task = self.store.get(task_id)
                if task is None or task.state != S.QUEUED or self.agents.hold(task):
                    continue
                slot = self._slots.take(task_id, executor)
                slot.job = asyncio.create_task(self._run(slot, task), name=f"task-{task_id}")

    async def _dependency_failed(self, task_id: str, why: str) -> None:
        try:
            await self.store.update(task_id, state=S.DEPENDENCY_FAILED, error=why)
        except Exception:
            log.exception("could not record a failed dependency", extra={"task": task_id})
            return
        self._waiters.notify(task_id)
        self._pump()  # its own dependents fail in turn

    # ---- running one task ------------------------------------------------------------
    async def _run(
        self,
        slot: Slot,
        task: Task,
        added: asyncio.Future[Task] | None = None,
        reattach: bool = False,
    ) -> None:
        """One attempt in its slot. `added`: the task's combined queued + running record
        on its way to disk (_start_at_once); nothing starts unless it is taken.
        `reattach`: a remote attempt an earlier daemon run started, followed again."""
        try:
            if added is not None:
                try:
                    task = await added
                except Exception:
                    return  # refused: nothing was stored, the submitter is told why
                self.totals["submitted"] += 1
            if reattach:
                log_path = self.store.log_file(task)
                notify = self._notifier(task.id)
                attempt = await self.executor.reattach(task, log_path, notify)
                ran = time.time() - (task.started_at or time.time())
                await self._follow(slot, task, attempt, ran)
            else:
                await self._attempt(slot, task, recorded_running=added is not None)
        except Exception:
            log.exception("task run failed", extra={"task": task.id})
            if slot.attempt is not None:
                try:
                    await slot.attempt.abort()
                except Exception:
                    log.exception("could not stop the task's processes", extra={"task": task.id})
            await self._failsafe.record(task.id)
        finally:
            self._slots.closed(task.id)
            self._pump()
            self._waiters.notify(task.id)

    def _recorded_failed(self, task_id: str) -> None:
        self.totals["failed"] += 1
        self._waiters.notify(task_id)

    async def _attempt(self, slot: Slot, task: Task, recorded_running: bool = False) -> None:
        """Run the task's current attempt (`recorded_running`: already durable as such)."""
        log_path = self.store.log_file(task)
        if not recorded_running and not await self._record_running(slot, task):
            return
        if (reason := slot.pending_stop()) is not None:  # asked for while that was written
            timeout = task.timeout_s or 0.0  # only read by a TIMEOUT, which needs a clock
            await self._ended(task, *outcome(Ending(NO_EXIT, reason), timeout), NO_EXIT, "")
            return
        try:
            run = await self.isolation.enter(task)  # its worktree, if isolated
            attempt = await self.executor.start(run, log_path, self._notifier(task.id))
        except (SpawnError, IsolationFailed) as exc:
            await self._ended(task, S.FAILED, str(exc), NO_EXIT, "")
            return
        self.totals["started"] += 1
        await self._follow(slot, task, attempt)

    def _notifier(self, task_id: str) -> Callable[[], None]:
        return lambda: self._waiters.notify(task_id)

    async def _follow(self, slot: Slot, task: Task, attempt: Attempt, ran: float = 0.0) -> None:
        """From the attempt's start (or re-attach: it `ran` so long) until its end is
        recorded."""
        slot.attach(attempt)
        timeout = task.timeout_s or self.config.daemon.action_timeout_minutes * 60
        # Where it runs: journalled only if it still runs in a moment (see
        # runner_record), and awaited before the final state.
        recorded = RunnerRecord(self.store, task.id, attempt)
        # The timeout runs on a clock that task.pause stops (aiwgd.tasks.pause).
        self.pauses.clock(task.id, max(0.0, timeout - ran), lambda: slot.stop(EndReason.TIMEOUT))
        self.pausing.started(task)
        try:
            ending: Ending = await attempt.wait(UNTIMED)
        finally:
            self.pauses.ended(task.id)
        self._slots.free(task.id)  # really gone: the next task need not wait for the disk
        self._pump()
        await asyncio.sleep(0)  # the next task's running line shares this end's fsync
        await recorded.settle()
        if ending.reason == EndReason.DETACHED:
            return  # it goes on remotely; the next start re-attaches to it
        state, error = outcome(ending, timeout)
        state, error, said = self.agents.finish(task.id, state, error)  # stream-json
        await self._ended(task, state, error, ending.exit, attempt.output_tail(), said)

    async def _record_running(self, slot: Slot, task: Task) -> bool:
        """Make the attempt's running state durable; False if it was stopped before."""
        if slot.reason is not None:
            # Stopped before anything was recorded: a cancel ends it here; on shutdown it
            # stays queued for the next start (nothing ran, no attempt to count).
            if slot.reason == EndReason.CANCELLED:
                await self.store.update(task.id, state=S.CANCELLED, error=NOT_RUN)
                self.totals["cancelled"] += 1
            return False
        # Durable before the spawn: whatever happens next (a kill -9 included), the next
        # start finds the task running, stops what it started (by its runner or by the
        # mark in the processes' environment) and counts the attempt as interrupted.
        # A task never runs without a record saying so.
        await self.store.update(task.id, state=S.RUNNING, **task.previous_attempt_fields())
        return True

    async def _ended(
        self,
        task: Task,
        state: TaskState,
        error: str | None,
        ex: Exit,
        tail: str,
        said: dict[str, Any] | None = None,
    ) -> None:
        # The runner goes with the attempt: it is what recovery needs while one runs, and
        # a dict per finished task is a large share of a big store's memory.
        fields: dict[str, Any] = {
            "runner": None,
            "exit_code": ex.code,
            "signal": ex.signal,
            "error": error,
            "output_tail": tail,
            **(said or {}),
        }
        retry = task.retries_left > 0 and not self.agents.no_retry(task.id)  # budget: final
        if state in (S.FAILED, S.TIMED_OUT) and retry:
            delay = retry_delay(task, self.config.agent)
            new = await self.store.update(
                task.id,
                state=S.QUEUED,
                attempt=task.attempt + 1,
                retry_at=time.time() + delay,
                **fields,
            )
            self.totals["retried"] += 1
            log.info(
                "task will be retried",
                extra={"task": task.id, "attempt": new.attempt, "delay_s": delay, "error": error},
            )
            self._queue.push(new.id, new.priority, new.retry_at)
            return
        await self.store.update(task.id, state=state, **fields)
        self.totals[str(state)] += 1
        if state == S.INTERRUPTED:  # a lost remote worker (a daemon stop: not accepting)
            again = await self.store.recover(task.id)
            if again.state == S.QUEUED:  # its on_interrupt and retries run it again
                self._queue.push(again.id, again.priority, again.retry_at)

    # ---- control ----------------------------------------------------------------------
    async def cancel(self, task_id: str, wait: bool = True) -> dict[str, Any]:
        task = self._get(task_id)
        if task.terminal:
            raise errors.Conflict(
                f"task {task_id} is already {task.state}; only queued or running tasks "
                "can be cancelled",
                {"id": task_id, "state": str(task.state)},
            )
        closing = self._slots.closing.get(task_id)
        if closing is not None and closing.job is not None:
            # It just ended; once its outcome is recorded, cancel what that left.
            await asyncio.wait({closing.job})
            return await self.cancel(task_id, wait)
        slot = self._slots.held.get(task_id)
        if slot is not None:
            self.pauses.proceed(task_id)  # a stopped process would not see the SIGTERM
            slot.stop(EndReason.CANCELLED)
            if wait and slot.job is not None:
                await asyncio.wait({slot.job})
            return self.get(task_id)
        self._queue.discard(task_id)
        await self.store.update(task_id, state=S.CANCELLED, error=NOT_RUN)
        self.totals["cancelled"] += 1
        self._waiters.notify(task_id)
        self._pump()  # tasks waiting `after` it now fail
        return self.get(task_id)
