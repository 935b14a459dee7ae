"""TaskStore: every task in memory, every change durable before it is acknowledged.

On disk: `tasks.json` (a snapshot people can read) and `tasks.journal` (fsynced JSON
lines of the changes since); how a change becomes a durable, numbered journal line and
when the snapshot is rewritten is aiwgd.storelog. This module decides what a change
may be and applies it in memory. A third small file, `tasks.ids`, durably reserves
blocks of task ids ahead of use, so even a lost tasks.json never lets an id be issued
twice.

API for the supervisor and RPC methods (all on the event loop thread):

    store = TaskStore(paths, config.tasks, router)  # router: optional EventRouter
    await store.start()            # load + replay + prune; see store.recovery
    store.new_id() -> str          # short, sortable, never reused
    await store.add(task) -> Task  # a new queued Task; durable when it returns
    await store.add(task, start=True)  # the same, starting at once (a slot is free):
        # stored running in one journal line; returns the task as queued
    await store.update(id, **fields) -> Task
        # durable when it returns; a `state` change must be allowed by
        # aiwgd.tasks.TRANSITIONS, else InvalidTransition (a Conflict, -32002);
        # an unknown id raises NotFound, a disk failure Unavailable
    store.set_now(id, **fields) -> Future  # no state change: in memory at once,
        # durable when the future resolves (the supervisor's runner record)
    store.get(id) -> Task | None
    store.list(state=, agent=, source=, limit=50, offset=0) -> (tasks, total)  # newest first
    store.counts() -> {state: n}   # every state, O(1)
    store.queued() -> [Task]       # creation order: rebuild the queue at start
    store.found_running() -> [Task]  # running when the daemon died: the executor stops
                                     # what is left, then store.recover(id)
    await store.recover(id) -> Task  # running -> interrupted -> queued (attempt + 1)
                                     # or failed, per the task's on_interrupt and retries
    store.interrupted() -> [Task]    # left interrupted by a crash: store.recover(id)
    await store.prune() -> int     # retention; also at start, periodically, on excess
    store.log_file(task) -> str    # where the task's full output goes
    await store.stop(fast)         # final compaction (skipped when fast), journal closed

Task objects are copy-on-write: `update()` replaces the stored object, so a Task you
hold is a consistent snapshot that never changes under you. Never mutate one; call
`update()`. Defaults filled by `update()`: entering running sets `started_at`,
entering a terminal state sets `finished_at` (unless given).

Events: when a router is given, every change of state publishes `task.<event>`
(aiwgd.tasks.EVENT_FOR_STATE: task.queued, task.started, task.completed, ...) once
the change is durable, with the task's summary (no output, no env) and `previous`.
Callers do not publish task state events themselves.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from typing import Any

from aiwgd import errors
from aiwgd.config import Config, Paths
from aiwgd.config.tasks import TasksSection
from aiwgd.infra.durable import ensure_private_dir
from aiwgd.lifecycle import Subsystem
from aiwgd.procs.output import ring_path
from aiwgd.tasks.model import (
    EVENT_FOR_STATE,
    TERMINAL,
    InvalidTransition,
    Task,
    TaskState,
    check_transition,
)
from aiwgd.tasks.retries import after_interrupt
from aiwgd.tasks.store import retention
from aiwgd.tasks.store.changes import StoreLog
from aiwgd.tasks.store.ids import TaskIds
from aiwgd.tasks.store.index import UPDATABLE, TaskIndex
from aiwgd.tasks.store.journal import remove_stale_temps
from aiwgd.tasks.store.recovery import load_store

log = logging.getLogger("aiwgd.store")


class TaskStore(Subsystem):
    name = "store"

    def __init__(self, paths: Paths, cfg: TasksSection, router: Any = None) -> None:
        self.paths = paths
        self.cfg = cfg
        self.router = router
        self._logs_dir = str(paths.task_logs_dir)
        self._index = TaskIndex()  # every task, in creation order
        self._ids = TaskIds(paths.tasks_ids)
        self.storelog = StoreLog(paths, self._index, cfg, on_error=self._error)
        self._pruner: asyncio.Task[None] | None = None
        self._auto_prune: asyncio.Task[None] | None = None
        self._open = False
        self.recovery: dict[str, Any] = {}
        self.pruned = 0
        # Outstanding write errors by kind (journal, compaction, ids), newest last; a
        # kind is cleared by its next success, so status tells when the disk recovered.
        self._errors: dict[str, str] = {}

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        t0 = time.monotonic()
        ensure_private_dir(self.paths.daemon_dir)
        ensure_private_dir(self.paths.task_logs_dir)
        remove_stale_temps(self.paths.daemon_dir)
        loaded = load_store(self.paths, self._index, self._ids)
        self.storelog.open(loaded)
        self._open = True
        self.recovery = {
            **loaded.report,
            "found_running": self._index.by_state[TaskState.RUNNING],
            "tasks": len(self._index),
            "load_s": round(time.monotonic() - t0, 3),
        }
        log.info("task store loaded", extra=self.recovery)
        await self.prune()
        # Stored tasks live long and hold no cycles: keep them out of the cyclic GC's
        # full collections, whose pauses would otherwise grow with the store.
        gc.freeze()
        if self.storelog.entries or loaded.report.get("snapshot") == "damaged":
            self.storelog.schedule_compaction()
        self._pruner = asyncio.create_task(self._prune_periodically(), name="store-prune")

    async def stop(self, fast: bool = False) -> None:
        if not self._open:
            return
        if self._pruner is not None:
            self._pruner.cancel()
        if self._auto_prune is not None:
            self._auto_prune.cancel()
        await self.storelog.final_compaction(fast)
        self._open = False
        await self.storelog.journal.close()

    async def apply_config(self, config: Config) -> None:
        self.cfg = self.storelog.cfg = config.tasks

    def status(self) -> dict[str, Any]:
        return {
            "state": "running" if self._open else "stopped",
            "tasks": len(self._index),
            "counts": self.counts(),
            "journal": self.storelog.status(),
            "compactions": self.storelog.compactions,
            "last_compaction": self.storelog.last_compaction,
            "pruned": self.pruned,
            "finished_bytes": self._index.finished_bytes,
            "recovery": self.recovery,
            "last_error": self.last_error,
            "errors": dict(self._errors),
        }

    @property
    def last_error(self) -> str | None:
        """The newest write error not yet cleared by a later success."""
        return next(reversed(self._errors.values()), None)

    # ---- reads -----------------------------------------------------------------------
    def new_id(self) -> str:
        try:
            task_id = self._ids.new(self._index)
        except OSError as exc:
            why = f"{self.paths.tasks_ids}: {exc.strerror or exc}"
            self._error("ids", f"cannot write {why}")
            raise errors.Unavailable(
                f"the task store cannot write to disk: {why}; nothing was changed "
                "(free some space and retry)"
            ) from None
        self._error("ids", None)
        return task_id

    def get(self, task_id: str) -> Task | None:
        return self._index.get(task_id)

    def __len__(self) -> int:
        return len(self._index)

    def counts(self) -> dict[str, int]:
        """Tasks per state (every state, zeros included); O(1)."""
        return self._index.counts()

    def queued(self) -> list[Task]:
        return self._index.in_state(TaskState.QUEUED)

    def found_running(self) -> list[Task]:
        return self._index.in_state(TaskState.RUNNING)

    def interrupted(self) -> list[Task]:
        return self._index.in_state(TaskState.INTERRUPTED)

    def list(
        self,
        state: str | None = None,
        agent: str | None = None,
        source: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Task], int]:
        """A page of tasks, newest first, and how many match in all."""
        return self._index.page(state, agent, source, limit, offset)

    def log_path(self, task_id: str) -> str:
        """Where a new task's full output goes (add() records it in the task).

        A str, not a Path: on Python 3.12 a parsed Path interns its parts for good,
        and every task's log name is new (a leak of ~55 bytes a task).
        """
        return os.path.join(self._logs_dir, f"{task_id}.log")

    def log_file(self, task: Task) -> str:
        """Where this task's output is: as recorded, else where it would be now."""
        return task.log_path or self.log_path(task.id)

    # ---- writes ----------------------------------------------------------------------
    async def add(self, task: Task, start: bool = False) -> Task:
        """Store a new queued task; returns it once it is on disk.

        `start`: it starts at once (its slot is taken), so it is stored running in one
        journal line instead of a queued one and then a running one. Recovery learns
        the same from that line (found running after a crash: an attempt may have
        started), task.queued and task.started are both published, and the task
        returned is the one the submitter is told of: queued, as task.queued shows it.
        """
        if not self._open:
            raise errors.Unavailable("the task store is not open")
        if task.state != TaskState.QUEUED:
            raise ValueError(f"a new task must be queued, not {task.state}")
        if (task.prompt is None) == (task.command is None):
            raise ValueError("a task needs exactly one of prompt or command")
        if task.id in self._index:
            raise errors.Conflict(f"task {task.id} already exists", {"id": task.id})
        if task.log_path is None:
            task = task.evolve(log_path=self.log_path(task.id))
        stored = task.evolve(state=TaskState.RUNNING, started_at=time.time()) if start else task
        line = self.storelog.line({"op": "add", "task": stored.to_dict()})
        self._ids.observe(task.id)
        self._index.put(stored)

        def undo() -> None:
            # Not acknowledged, so not stored: nothing half-way.
            if self._index.get(task.id) is stored:
                self._index.drop(task.id)

        await self.storelog.commit(line, task.id, undo)
        self._publish(task, None)
        if start:
            self._publish(stored, TaskState.QUEUED)
        return task

    async def update(self, task_id: str, **fields: Any) -> Task:
        """Change fields (and maybe the state, per the table); returns the new Task.

        If the disk refuses the change (Unavailable), the task is left as it was."""
        # A change of this task still on its way to disk is waited for (rare: with
        # nothing in flight there is no await here, so journal order is call order), so
        # a change is always built on durable state and undoing a refused one can never
        # undo another.
        if task_id in self.storelog.inflight:
            await self.storelog.settled(task_id)
        old, new, durable = self._change(task_id, fields)
        await durable
        if new.state in TERMINAL:
            self._maybe_prune()
        if new.state != old.state:
            self._publish(new, old.state)
        return new

    def set_now(self, task_id: str, **fields: Any) -> asyncio.Future[None]:
        """Change fields other than the state in memory and queue the change for the
        disk, both now (the next read sees it); the future resolves once it is durable
        (Unavailable: refused and undone). No other change of the task may be on its
        way (RuntimeError): this is for a change that follows a durable one at once."""
        if "state" in fields or task_id in self.storelog.inflight:
            raise RuntimeError(f"set_now({task_id!r}): a state change or one in flight")
        return self._change(task_id, fields)[2]

    def _change(
        self, task_id: str, fields: dict[str, Any]
    ) -> tuple[Task, Task, asyncio.Future[None]]:
        """Check a change, make it in memory and queue its line: (old, new, durable)."""
        old = self._index.get(task_id)
        if old is None:
            raise errors.NotFound(f"no task {task_id}", {"id": task_id})
        if not self._open:
            raise errors.Unavailable("the task store is not open")
        if not UPDATABLE.issuperset(fields):
            bad = ", ".join(sorted(set(fields) - UPDATABLE))
            raise ValueError(f"cannot update task field(s): {bad}")
        if old.state in TERMINAL:
            raise InvalidTransition(
                task_id,
                old.state,
                fields.get("state", old.state),
                f"task {task_id} is {old.state}, which is final",
            )
        new_state = TaskState(fields.get("state", old.state))
        if "state" in fields:
            fields["state"] = new_state
        if new_state != old.state:
            check_transition(task_id, old.state, new_state)
            retry = old.state == TaskState.RUNNING and new_state == TaskState.QUEUED
            if retry and fields.get("attempt") != old.attempt + 1:
                raise InvalidTransition(
                    task_id,
                    old.state,
                    new_state,
                    f"task {task_id}: running -> queued is a retry only; "
                    f"pass attempt={old.attempt + 1}",
                )
            now = time.time()
            if new_state == TaskState.RUNNING:
                fields.setdefault("started_at", now)
            elif new_state in TERMINAL:
                fields.setdefault("finished_at", now)
        new = old.evolve(**fields)
        # A TaskState is a str: it goes into the line as its value.
        line = self.storelog.line({"op": "set", "id": task_id, "fields": fields})
        self._index.put(new)

        def undo() -> None:
            if self._index.get(task_id) is new:
                self._index.put(old)

        return old, new, self.storelog.commit(line, task_id, undo)

    async def recover(self, task_id: str) -> Task:
        """An attempt the daemon lost (it stopped or died while the task ran): recorded
        interrupted, then requeued (attempt + 1) or failed per the task's on_interrupt
        (records older than it: tasks.on_interrupt for its kind). A requeue is a retry:
        it needs one of max_retries left and uses it up, so nothing runs again on every
        start. Also finishes the job for a task left interrupted by a crash between."""
        task = self._index.tasks[task_id]
        if task.state == TaskState.RUNNING:
            why = "interrupted: the daemon stopped while this task was running"
            task = await self.update(task_id, state=TaskState.INTERRUPTED, error=why)
        if task.state != TaskState.INTERRUPTED:
            return task
        return await self.update(task_id, **after_interrupt(task, self.cfg))

    async def prune(self) -> int:
        """Remove finished tasks past retention (age, count or bytes) and their log files."""
        if not self._open:
            return 0
        doomed = retention.doomed(self._index, self.cfg, time.time())
        if not doomed:
            return 0
        ids = [t.id for t in doomed]
        logs = [self.log_file(t) for t in doomed]
        logs += [ring_path(p) for p in logs]  # a tail a crash left held back
        line = self.storelog.line({"op": "del", "ids": ids})
        for task_id in ids:
            self._index.drop(task_id)
        # Refused: the tasks are kept.
        await self.storelog.commit(line, undo=lambda: self._index.restore(doomed))
        await asyncio.to_thread(retention.unlink_all, logs)
        self.pruned += len(ids)
        log.info("pruned finished tasks", extra={"count": len(ids)})
        return len(ids)

    async def compact(self) -> None:
        """Rewrite tasks.json from memory now (see aiwgd.storelog)."""
        await self.storelog.compact()

    # ---- internals -------------------------------------------------------------------
    def _error(self, kind: str, text: str | None) -> None:
        """Record (text) or clear (None) the outstanding error of one kind of write."""
        self._errors.pop(kind, None)
        if text is not None:
            self._errors[kind] = text

    def _publish(self, task: Task, previous: TaskState | None) -> None:
        if self.router is None:
            return
        data = task.summary()
        data.pop("env", None)  # may carry tokens; events are logged
        data["previous"] = str(previous) if previous else None
        self.router.publish(EVENT_FOR_STATE[task.state], data, "tasks")

    def _maybe_prune(self) -> None:
        if not retention.overdue(self._index, self.cfg):
            return
        if self._auto_prune is None or self._auto_prune.done():
            self._auto_prune = asyncio.create_task(self._prune_logged(), name="store-auto-prune")

    async def _prune_logged(self) -> None:
        try:
            await self.prune()
        except Exception:
            log.exception("pruning failed")

    async def _prune_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.prune_interval_minutes * 60)
            await self._prune_logged()
