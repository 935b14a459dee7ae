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
runs (spawn, wait for exit / stop / timeout, the ladder, its outcome) is
aiwgd.taskrun; this module decides when attempts start and what their ends mean.

Shutdown: new submissions get ShuttingDown; running tasks may finish for up to
`daemon.stop_grace_seconds` (not at all on a fast stop), then go down the ladder and
are recorded interrupted, then requeued (or failed, per tasks.requeue_interrupted);
queued tasks stay queued on disk and run after the next start. Start-up kills what
is left of tasks that were running when the daemon died (PID + create time checked).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiwgd import errors
from aiwgd.config import Config
from aiwgd.lifecycle import Subsystem
from aiwgd.procs.child import Exit, kill_leftovers
from aiwgd.tasks.executors.local import Run, SpawnError, running_fields, spawn
from aiwgd.tasks.model import Task, TaskState
from aiwgd.tasks.queue import TaskQueue
from aiwgd.tasks.spec import SubmitParams, parse_spec, prepare
from aiwgd.tasks.store.store import TaskStore

if TYPE_CHECKING:
    from aiwgd.daemon import Daemon

log = logging.getLogger("aiwgd.supervisor")

S = TaskState


class Supervisor(Subsystem):
    name = "supervisor"

    def __init__(self, daemon: Daemon, store: TaskStore) -> None:
        self.daemon = daemon
        self.store = store
        self.config: Config = daemon.config
        self._queue = TaskQueue(self._pump)
        self._runs: dict[str, Run] = {}  # holding a slot
        self._closing: dict[str, Run] = {}  # slot freed, final state being recorded
        self._watchers: dict[str, set[asyncio.Future[None]]] = {}
        self._accepting = False
        self.max_active = 0
        self.totals: dict[str, int] = dict.fromkeys(
            ("submitted", "started", "completed", "failed", "timed_out", "cancelled",
             "retried", "interrupted", "recovered"), 0)  # fmt: skip

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self.config = self.daemon.config
        for task in self.store.found_running():
            await self._recover(task)
        for task in self.store.list(state=S.INTERRUPTED, limit=1 << 30)[0]:
            await self._requeue_interrupted(task)  # a crash between the two updates
        for task in self.store.queued():  # creation order: FIFO within a priority
            self._queue.push(task.id, task.priority, task.retry_at)
        self._accepting = True
        self._pump()

    async def _recover(self, task: Task) -> None:
        pgid = task.pgid or task.pid
        if pgid:
            hit = await asyncio.to_thread(kill_leftovers, pgid, task.proc_create_time)
            if hit:
                log.warning("killed processes left by an interrupted task",
                            extra={"task": task.id, "pids": hit})  # fmt: skip
        self.totals["recovered"] += 1
        await self.store.recover(task.id)

    async def _requeue_interrupted(self, task: Task) -> None:
        if self.store.cfg.requeue_interrupted:
            await self.store.update(task.id, state=S.QUEUED, attempt=task.attempt + 1,
                                    pid=None, pgid=None, proc_create_time=None,
                                    started_at=None, retry_at=None)  # fmt: skip
        else:
            await self.store.update(task.id, state=S.FAILED)

    async def stop(self, fast: bool = False) -> None:
        self._accepting = False
        self._queue.cancel_timers()
        jobs = {r.job for r in self._runs.values() if r.job is not None}
        fast_ev = self.daemon.fast_stop
        if jobs and not (fast or fast_ev.is_set()):
            log.info("waiting for running tasks", extra={"running": len(jobs),
                     "grace_s": self.config.daemon.stop_grace_seconds})  # fmt: skip
            deadline = time.monotonic() + self.config.daemon.stop_grace_seconds
            fast_wait = asyncio.ensure_future(fast_ev.wait())
            try:
                while jobs and not fast_ev.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    await asyncio.wait({*jobs, fast_wait}, timeout=left,
                                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                    jobs = {j for j in jobs if not j.done()}
            finally:
                fast_wait.cancel()
        for run in list(self._runs.values()):
            run.stop("shutdown")
        remaining = [r.job for r in [*self._runs.values(), *self._closing.values()]
                     if r.job is not None]  # fmt: skip
        if remaining:
            await asyncio.gather(*remaining, return_exceptions=True)
        for task_id in list(self._watchers):
            self._notify(task_id)

    async def apply_config(self, config: Config) -> None:
        old = self.config.daemon.max_parallel_actions
        self.config = config
        if config.daemon.max_parallel_actions != old:
            log.info("concurrency cap changed",
                     extra={"old": old, "new": config.daemon.max_parallel_actions})  # fmt: skip
        self._pump()

    def status(self) -> dict[str, Any]:
        return {
            "state": "running" if self._accepting else "stopped",
            "running": len(self._runs),
            "queued": len(self._queue),
            "waiting_retry": self._queue.waiting_retry,
            "cap": self.config.daemon.max_parallel_actions,
            "max_active": self.max_active,
            "counts": self.store.counts(),
            "totals": dict(self.totals),
        }

    # ---- submitting and queueing -----------------------------------------------------
    async def submit(self, spec: dict[str, Any], source: str) -> dict[str, Any]:
        """Validate and queue a task; returns it as a dict. Raises RpcError subclasses."""
        return (await self.submit_params(parse_spec(spec), source)).to_dict()

    async def submit_params(self, p: SubmitParams, source: str) -> Task:
        if not self._accepting or self.daemon.stop_requested.is_set():
            raise errors.ShuttingDown("the daemon is shutting down; no new tasks are taken")
        task_id = self.store.new_id()
        task = prepare(p, source, self.config, self.daemon.paths.root, task_id)
        task.log_path = str(self.store.log_path(task_id))
        task = await self.store.add(task)  # durable from here: the client may rely on it
        self.totals["submitted"] += 1
        self._queue.push(task.id, task.priority)
        self._pump()
        return task

    def _pump(self) -> None:
        """Start queued tasks while slots are free (called on every change)."""
        if not self._accepting:
            return
        cap = self.config.daemon.max_parallel_actions
        while len(self._runs) < cap:
            task_id = self._queue.pop()
            if task_id is None:
                return
            task = self.store.get(task_id)
            if task is None or task.state != S.QUEUED:
                continue
            run = Run(task_id)
            self._runs[task_id] = run
            self.max_active = max(self.max_active, len(self._runs))
            run.job = asyncio.create_task(self._run(run, task), name=f"task-{task_id}")

    # ---- running one task ------------------------------------------------------------
    async def _run(self, run: Run, task: Task) -> None:
        try:
            await self._attempt(run, task)
        except Exception:
            log.exception("task run failed", extra={"task": task.id})
            if run.child is not None:
                with contextlib.suppress(Exception):
                    await run.child.kill()
                    await run.child.finish(0)
            with contextlib.suppress(Exception):
                # Never leave the task queued but out of the queue, or running forever.
                current = self.store.get(task.id)
                if current is not None and current.state == S.QUEUED:
                    current = await self.store.update(task.id, state=S.RUNNING)
                if current is not None and current.state == S.RUNNING:
                    await self.store.update(task.id, state=S.FAILED,
                                            error="internal error while supervising")  # fmt: skip
                    self.totals["failed"] += 1
        finally:
            self._free_slot(task.id)
            self._closing.pop(task.id, None)
            self._notify(task.id)

    def _free_slot(self, task_id: str) -> None:
        """Called only once the task's processes are gone; starts the next task."""
        run = self._runs.pop(task_id, None)
        if run is not None:
            self._closing[task_id] = run  # its final state is still being recorded
        self._pump()

    async def _attempt(self, run: Run, task: Task) -> None:
        cfg = self.config
        log_path = Path(task.log_path) if task.log_path else self.store.log_path(task.id)
        try:
            child = await spawn(cfg, self.daemon.paths.root, task, log_path,
                                on_data=lambda: self._notify(task.id))  # fmt: skip
        except SpawnError as exc:
            await self.store.update(task.id, state=S.RUNNING, log_path=str(log_path))
            await self._ended(task, S.FAILED, str(exc), Exit(None, None), "")
            return
        run.child = child
        self.totals["started"] += 1
        # Recorded while the child already works, so the journal's fsync overlaps it; it
        # is awaited before the final state, and the journal keeps call order.
        recorded = asyncio.ensure_future(self.store.update(
            task.id, state=S.RUNNING, **running_fields(task, child, log_path)))  # fmt: skip
        timeout = task.timeout_s or cfg.daemon.action_timeout_minutes * 60
        ex = await run.wait_end(child, timeout, lambda: self.config.daemon.stop_grace_seconds,
                                self.daemon.fast_stop)  # fmt: skip
        self._free_slot(task.id)  # really gone: the next task need not wait for the disk
        await recorded
        state, error = run.outcome(ex, timeout)
        await self._ended(task, state, error, ex, child.sink.tail())

    async def _ended(self, task: Task, state: TaskState, error: str | None, ex: Exit,
                     tail: str) -> None:  # fmt: skip
        fields: dict[str, Any] = {"exit_code": ex.code, "signal": ex.signal, "error": error,
                                  "output_tail": tail}  # fmt: skip
        retries_left = task.max_retries - (task.attempt - 1)
        if state in (S.FAILED, S.TIMED_OUT) and retries_left > 0:
            a = self.config.agent
            delay = min(a.retry_backoff_seconds * 2 ** (task.attempt - 1),
                        a.retry_backoff_max_seconds)  # fmt: skip
            new = await self.store.update(task.id, state=S.QUEUED, attempt=task.attempt + 1,
                                          retry_at=time.time() + delay, **fields)  # fmt: skip
            self.totals["retried"] += 1
            log.info("task will be retried", extra={"task": task.id, "attempt": new.attempt,
                                                    "delay_s": delay, "error": error})  # fmt: skip
            self._queue.push(new.id, new.priority, new.retry_at)
            return
        await self.store.update(task.id, state=state, **fields)
        self.totals[str(state)] += 1
        if state == S.INTERRUPTED:
            await self._requeue_interrupted(self.store.get(task.id) or task)

    # ---- control and queries -----------------------------------------------------------
    def _get(self, task_id: str) -> Task:
        task = self.store.get(task_id)
        if task is None:
            raise errors.NotFound(f"no task with id {task_id!r}", {"id": task_id})
        return task

    def get(self, task_id: str) -> dict[str, Any]:
        """The task as a dict; a running task shows its live output tail."""
        task = self._get(task_id)
        out = task.to_dict()
        run = self._runs.get(task_id)
        if run is not None and run.child is not None:
            out["output_tail"] = run.child.sink.tail()
        return out

    async def cancel(self, task_id: str, wait: bool = True) -> dict[str, Any]:
        task = self._get(task_id)
        if task.terminal:
            raise errors.Conflict(
                f"task {task_id} is already {task.state}; only queued or running tasks "
                "can be cancelled", {"id": task_id, "state": str(task.state)},
            )  # fmt: skip
        closing = self._closing.get(task_id)
        if closing is not None and closing.job is not None:
            # It just ended; once its outcome is recorded, cancel what that left.
            await asyncio.wait({closing.job})
            return await self.cancel(task_id, wait)
        run = self._runs.get(task_id)
        if run is not None:
            run.stop("cancelled")
            if wait and run.job is not None:
                await asyncio.wait({run.job})
            return self.get(task_id)
        self._queue.discard(task_id)
        await self.store.update(task_id, state=S.CANCELLED, error="cancelled before it ran")
        self.totals["cancelled"] += 1
        self._notify(task_id)
        return self.get(task_id)

    async def wait(self, task_id: str, timeout_s: float) -> dict[str, Any]:
        """Return the task once terminal, or as it is when `timeout_s` runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            task = self._get(task_id)
            left = deadline - time.monotonic()
            if task.terminal or left <= 0 or not self._accepting:
                return self.get(task_id)
            await self.changed(task_id, left)

    async def changed(self, task_id: str, timeout: float) -> None:
        """Sleep until the task changes state or writes output (or `timeout`)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.setdefault(task_id, set()).add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            waiters = self._watchers.get(task_id)
            if waiters is not None:
                waiters.discard(fut)
                if not waiters:
                    del self._watchers[task_id]

    def _notify(self, task_id: str) -> None:
        for fut in self._watchers.pop(task_id, ()):
            if not fut.done():
                fut.set_result(None)

    def stats(self) -> dict[str, Any]:
        counts = self.store.counts()
        return {
            "counts": counts,
            "running": len(self._runs),
            "queued": counts.get("queued", 0),
            "waiting_retry": self._queue.waiting_retry,
            "cap": self.config.daemon.max_parallel_actions,
            "max_active": self.max_active,
            "stored": sum(counts.values()),
            "totals": dict(self.totals),
            "accepting": self._accepting,
        }
