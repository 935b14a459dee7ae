"""TaskStore: every task in memory, every change durable before it is acknowledged.

On disk (config/paths.py): `.aiwg/daemon/tasks.json`, a snapshot of all tasks that
people can read, and `.aiwg/daemon/tasks.journal`, fsynced JSON lines of the changes
since (aiwgd/journal.py). A change costs one appended line, whatever the number of
stored tasks; the snapshot is rewritten in a background thread when the journal
reaches `tasks.compact_every` entries, after a start-up that replayed entries, and at
shutdown. Journal entries (`seq` numbered, holding absolute values) are idempotent to
replay, so a crash at any moment loses nothing that was acknowledged. A third small
file, `tasks.ids`, durably reserves blocks of task ids ahead of use, so even a lost
tasks.json never lets an id be issued twice.

API for the supervisor and RPC methods (all on the event loop thread):

    store = TaskStore(paths, config.tasks, router)   # router: optional EventRouter
    await store.start()           # load + replay + prune; store.recovery says what
                                  # was found (torn journal tail, damaged snapshot)
    store.new_id() -> str         # short, sortable, never reused
    await store.add(task)         # a new queued Task; durable when it returns
    await store.update(id, **fields) -> Task
                                  # durable when it returns; a `state` change must be
                                  # allowed by aiwgd.tasks.TRANSITIONS, else raises
                                  # InvalidTransition (a Conflict, RPC code -32002);
                                  # an unknown id raises NotFound
    store.get(id) -> Task | None
    store.list(state=, agent=, source=, limit=50, offset=0) -> (tasks, total)
                                  # newest first
    store.counts() -> {state: n}  # every state, O(1)
    store.queued() -> [Task]      # in creation order: rebuild the queue at start
    store.found_running() -> [Task]
                                  # running when the daemon died: kill leftovers
                                  # (procs.kill_leftovers), then await store.recover(id)
    await store.recover(id) -> Task
                                  # running -> interrupted -> queued (attempt + 1) or
                                  # failed, per tasks.requeue_interrupted
    await store.prune() -> int    # retention; also at start and periodically
    store.log_path(id) -> Path    # where the task's full output goes
    await store.stop()            # final compaction, journal closed

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
import contextlib
import gc
import itertools
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiwgd import errors
from aiwgd.base import Subsystem
from aiwgd.fsutil import ensure_private_dir, write_json_atomic
from aiwgd.journal import Journal, JournalError, read_journal, write_snapshot
from aiwgd.snapshot import load_snapshot, move_aside
from aiwgd.tasks import (
    EVENT_FOR_STATE,
    FIELD_NAMES,
    TERMINAL,
    IdGenerator,
    InvalidTransition,
    Task,
    TaskState,
    check_transition,
)
from config import Config, Paths
from config.tasks import TasksSection

log = logging.getLogger("aiwgd.store")

ID_RESERVE_MS = 60_000  # ids reserved per write of tasks.ids (one minute of the clock)
_IDS_ABOUT = "every task id issued so far is below this floor (base 36, without the suffix)"
_IMMUTABLE = frozenset({"id", "created_at"})
_UPDATABLE = frozenset(FIELD_NAMES) - _IMMUTABLE


def _line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class TaskStore(Subsystem):
    name = "store"

    def __init__(self, paths: Paths, cfg: TasksSection, router: Any = None) -> None:
        self.paths = paths
        self.cfg = cfg
        self.router = router
        self._tasks: dict[str, Task] = {}  # insertion order = creation order
        self._counts: dict[TaskState, int] = dict.fromkeys(TaskState, 0)
        self._ids = IdGenerator()
        self._id_reserved = 0  # ids below this are durably reserved in tasks.ids
        self._seq = 0
        self._journal = Journal(paths.tasks_journal)
        self._journal_entries = 0  # lines in the journal file since the last compaction
        self._compacting: asyncio.Task[None] | None = None
        self._compact_lock = asyncio.Lock()
        self._pruner: asyncio.Task[None] | None = None
        self._open = False
        self.recovery: dict[str, Any] = {}
        self.compactions = 0
        self.last_compaction: dict[str, Any] | None = None
        self.pruned = 0
        self.last_error: str | None = None

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        t0 = time.monotonic()
        ensure_private_dir(self.paths.daemon_dir)
        ensure_private_dir(self.paths.task_logs_dir)
        # The loader allocates one object graph per stored task and frees none: the
        # cyclic GC would rescan the growing heap many times over for nothing.
        gc.disable()
        try:
            snap = load_snapshot(self.paths.tasks_file)
            for task in snap.tasks:
                self._put(task)
        finally:
            gc.enable()
        for task_id in snap.salvaged_ids:
            self._ids.observe(task_id)
        id_file = self._load_id_floor()
        jr = read_journal(self.paths.tasks_journal)
        replayed = self._replay(jr.entries, snap.seq)
        self._journal_entries = len(jr.entries)
        damaged_journal = self._keep_damaged_journal() if jr.bad_lines else None
        if jr.torn_bytes:
            where = {"bytes": jr.torn_bytes, "file": str(self.paths.tasks_journal)}
            log.warning("torn last journal line skipped (a write cut short by a crash; "
                        "it was never acknowledged)", extra=where)  # fmt: skip
        self._journal.open(truncate_to=jr.good_bytes if jr.torn_bytes else None)
        self._open = True
        self.recovery = {
            **snap.report,
            "journal_entries": len(jr.entries),
            "replayed": replayed,
            "torn_bytes": jr.torn_bytes,
            "bad_journal_lines": jr.bad_lines[:20],
            "damaged_journal": damaged_journal,
            "id_file": id_file,
            "found_running": self._counts[TaskState.RUNNING],
            "tasks": len(self._tasks),
            "load_s": round(time.monotonic() - t0, 3),
        }
        log.info("task store loaded", extra=self.recovery)
        await self.prune()
        # Stored tasks live long and hold no cycles: keep them out of the cyclic GC's
        # full collections, whose pauses would otherwise grow with the store.
        gc.freeze()
        if self._journal_entries or snap.report.get("snapshot") == "damaged":
            self._schedule_compaction()
        self._pruner = asyncio.create_task(self._prune_periodically(), name="store-prune")

    async def stop(self, fast: bool = False) -> None:
        if not self._open:
            return
        if self._pruner is not None:
            self._pruner.cancel()
        if self._compacting is not None:
            with contextlib.suppress(Exception):
                await self._compacting
        # Even a fast stop compacts: the journal alone is enough to recover, but a
        # current tasks.json is what users read.
        if self._journal_entries:
            with contextlib.suppress(Exception):
                await self.compact()
        self._open = False
        await self._journal.close()

    async def apply_config(self, config: Config) -> None:
        self.cfg = config.tasks

    def status(self) -> dict[str, Any]:
        return {
            "state": "running" if self._open else "stopped",
            "tasks": len(self._tasks),
            "counts": self.counts(),
            "journal": {
                "entries": self._journal_entries,
                "bytes": self._journal.size,
                "fsyncs": self._journal.fsyncs,
            },
            "compactions": self.compactions,
            "last_compaction": self.last_compaction,
            "pruned": self.pruned,
            "recovery": self.recovery,
            "last_error": self.last_error,
        }

    # ---- reads -----------------------------------------------------------------------
    def new_id(self) -> str:
        while True:
            task_id = self._ids.new()
            if task_id not in self._tasks:
                break
        if self._ids.last >= self._id_reserved:
            # Reserve a block of ids durably before handing one out: a damaged or
            # lost tasks.json can then never make us issue an id a second time.
            floor = self._ids.last + ID_RESERVE_MS
            try:
                write_json_atomic(self.paths.tasks_ids, {"floor": floor, "about": _IDS_ABOUT})
            except OSError as exc:
                self.last_error = f"cannot write {self.paths.tasks_ids}: {exc}"
                raise errors.Unavailable(f"the task store cannot write to disk: {exc}") from None
            self._id_reserved = floor
        return task_id

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def __len__(self) -> int:
        return len(self._tasks)

    def counts(self) -> dict[str, int]:
        return {str(s): n for s, n in self._counts.items()}

    def queued(self) -> list[Task]:
        return [t for t in self._tasks.values() if t.state == TaskState.QUEUED]

    def found_running(self) -> list[Task]:
        return [t for t in self._tasks.values() if t.state == TaskState.RUNNING]

    def list(
        self, state: str | None = None, agent: str | None = None, source: str | None = None,
        limit: int = 50, offset: int = 0,
    ) -> tuple[list[Task], int]:  # fmt: skip
        """A page of tasks, newest first, and how many match in all."""
        it: Iterator[Task] = reversed(self._tasks.values())
        if state is not None:
            it = (t for t in it if t.state == state)
        if agent is not None:
            it = (t for t in it if t.agent == agent)
        if source is not None:
            it = (t for t in it if t.source == source)
        page = list(itertools.islice(it, offset, offset + limit))
        if agent is None and source is None:
            total = self._counts.get(TaskState(state), 0) if state else len(self._tasks)
        else:
            total = offset + len(page) + sum(1 for _ in it) if page else None
            if total is None:  # the offset ran past the end: count from scratch
                total = sum(1 for _ in self._matching(state, agent, source))
        return page, total

    def _matching(self, state: str | None, agent: str | None, source: str | None) -> Iterator[Task]:
        for t in self._tasks.values():
            if (
                (state is None or t.state == state)
                and (agent is None or t.agent == agent)
                and (source is None or t.source == source)
            ):
                yield t

    def log_path(self, task_id: str) -> Path:
        return self.paths.task_logs_dir / f"{task_id}.log"

    # ---- writes ----------------------------------------------------------------------
    async def add(self, task: Task) -> Task:
        """Store a new queued task; returns once it is on disk."""
        if not self._open:
            raise errors.Unavailable("the task store is not open")
        if task.state != TaskState.QUEUED:
            raise ValueError(f"a new task must be queued, not {task.state}")
        if (task.prompt is None) == (task.command is None):
            raise ValueError("a task needs exactly one of prompt or command")
        if task.id in self._tasks:
            raise errors.Conflict(f"task {task.id} already exists", {"id": task.id})
        self._ids.observe(task.id)
        self._put(task)
        self._seq += 1
        fut = self._journal.append(_line({"seq": self._seq, "op": "add", "task": task.to_dict()}))
        try:
            await self._durable(fut)
        except errors.Unavailable:
            # Not acknowledged, so not stored: nothing half-way.
            if self._tasks.get(task.id) is task:
                self._drop(task.id)
            raise
        self._publish(task, None)
        return task

    async def update(self, task_id: str, **fields: Any) -> Task:
        """Change fields (and maybe the state, per the table); returns the new Task."""
        old = self._tasks.get(task_id)
        if old is None:
            raise errors.NotFound(f"no task {task_id}", {"id": task_id})
        if not self._open:
            raise errors.Unavailable("the task store is not open")
        bad = set(fields) - _UPDATABLE
        if bad:
            raise ValueError(f"cannot update task field(s): {', '.join(sorted(bad))}")
        if old.state in TERMINAL:
            raise InvalidTransition(task_id, old.state, fields.get("state", old.state),
                                    f"task {task_id} is {old.state}, which is final")  # fmt: skip
        new_state = TaskState(fields.get("state", old.state))
        if "state" in fields:
            fields["state"] = new_state
        if new_state != old.state:
            check_transition(task_id, old.state, new_state)
            retry = old.state == TaskState.RUNNING and new_state == TaskState.QUEUED
            if retry and fields.get("attempt") != old.attempt + 1:
                raise InvalidTransition(task_id, old.state, new_state,
                    f"task {task_id}: running -> queued is a retry only; "
                    f"pass attempt={old.attempt + 1}")  # fmt: skip
            now = time.time()
            if new_state == TaskState.RUNNING:
                fields.setdefault("started_at", now)
            elif new_state in TERMINAL:
                fields.setdefault("finished_at", now)
        new = replace(old, **fields)
        self._put(new)
        self._seq += 1
        changes = {k: (str(v) if k == "state" else v) for k, v in fields.items()}
        entry = {"seq": self._seq, "op": "set", "id": task_id, "fields": changes}
        await self._durable(self._journal.append(_line(entry)))
        if new.state != old.state:
            self._publish(new, old.state)
        return new

    async def recover(self, task_id: str) -> Task:
        """A task found running at start: interrupted, then requeued or failed."""
        task = self._tasks[task_id]
        if task.state != TaskState.RUNNING:
            return task
        why = "interrupted: the daemon stopped while this task was running"
        await self.update(task_id, state=TaskState.INTERRUPTED, error=why)
        if self.cfg.requeue_interrupted:
            return await self.update(
                task_id, state=TaskState.QUEUED, attempt=task.attempt + 1, pid=None,
                pgid=None, proc_create_time=None, started_at=None, retry_at=None,
            )  # fmt: skip
        return await self.update(task_id, state=TaskState.FAILED)

    async def prune(self) -> int:
        """Remove finished tasks past retention (age or count) and their log files."""
        if not self._open:
            return 0
        cutoff = time.time() - self.cfg.retention_days * 86_400
        finished = [t for t in self._tasks.values() if t.state in TERMINAL]
        doomed = [t for t in finished if (t.finished_at or t.created_at) < cutoff]
        excess = len(finished) - len(doomed) - self.cfg.max_finished
        if excess > 0:
            gone = {t.id for t in doomed}
            keep = sorted((t for t in finished if t.id not in gone),
                          key=lambda t: (t.finished_at or t.created_at, t.id))  # fmt: skip
            doomed.extend(keep[:excess])
        if not doomed:
            return 0
        ids = [t.id for t in doomed]
        logs = [Path(t.log_path) if t.log_path else self.log_path(t.id) for t in doomed]
        for task_id in ids:
            self._drop(task_id)
        self._seq += 1
        await self._durable(
            self._journal.append(_line({"seq": self._seq, "op": "del", "ids": ids}))
        )
        await asyncio.to_thread(_unlink_all, logs)
        self.pruned += len(ids)
        log.info("pruned finished tasks", extra={"count": len(ids)})
        return len(ids)

    # ---- compaction ------------------------------------------------------------------
    async def compact(self) -> None:
        """Rewrite tasks.json from memory and drop the journal lines it now holds."""
        async with self._compact_lock:
            t0 = time.monotonic()
            # Copy-on-write tasks: this list is exactly the state at `seq`.
            seq, tasks, entries = self._seq, list(self._tasks.values()), self._journal_entries
            offset = await self._journal.mark()
            count = await asyncio.to_thread(
                write_snapshot, self.paths.tasks_file, seq, (t.to_dict() for t in tasks)
            )
            await self._journal.swap(offset)
            self._journal_entries -= entries
            self.compactions += 1
            self.last_compaction = {"at": time.time(), "tasks": count, "seq": seq,
                                    "duration_s": round(time.monotonic() - t0, 3)}  # fmt: skip
            log.debug("task store compacted", extra=self.last_compaction)

    def _schedule_compaction(self) -> None:
        if self._compacting is None or self._compacting.done():
            self._compacting = asyncio.create_task(self._compact_logged(), name="store-compact")

    async def _compact_logged(self) -> None:
        try:
            await self.compact()
        except Exception as exc:
            self.last_error = f"compaction failed: {exc}"
            log.exception("task store compaction failed")

    # ---- internals -------------------------------------------------------------------
    async def _durable(self, fut: asyncio.Future[None]) -> None:
        self._journal_entries += 1
        if self._journal_entries >= self.cfg.compact_every:
            self._schedule_compaction()
        try:
            # Shielded: a cancelled caller must not cancel the write's bookkeeping.
            await asyncio.shield(fut)
        except JournalError as exc:
            self.last_error = str(exc)
            raise errors.Unavailable(f"the task store cannot write to disk: {exc}") from None

    def _put(self, task: Task) -> None:
        old = self._tasks.get(task.id)
        if old is not None:
            self._counts[old.state] -= 1
        self._tasks[task.id] = task
        self._counts[task.state] += 1

    def _drop(self, task_id: str) -> None:
        task = self._tasks.pop(task_id, None)
        if task is not None:
            self._counts[task.state] -= 1

    def _replay(self, entries: list[dict[str, Any]], after_seq: int) -> int:
        """Apply journal entries newer than the snapshot; returns how many applied."""
        applied = 0
        for entry in entries:
            seq = entry["seq"]
            self._seq = max(self._seq, seq)
            if seq <= after_seq:
                continue  # already in the snapshot (a crash between rename and swap)
            try:
                self._apply(entry)
                applied += 1
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("journal entry skipped", extra={"seq": seq, "error": str(exc)})
        self._seq = max(self._seq, after_seq)
        return applied

    def _apply(self, entry: dict[str, Any]) -> None:
        op = entry["op"]
        if op == "add":
            task = Task.from_dict(entry["task"])
            self._ids.observe(task.id)
            self._put(task)
        elif op == "set":
            old = self._tasks.get(entry["id"])
            if old is None:
                return  # pruned later, or lost with a damaged snapshot
            fields = {k: v for k, v in entry["fields"].items() if k in _UPDATABLE}
            if "state" in fields:
                fields["state"] = TaskState(fields["state"])
            self._put(replace(old, **fields))
        elif op == "del":
            for task_id in entry["ids"]:
                self._drop(task_id)
        else:
            raise ValueError(f"unknown op {op!r}")

    def _load_id_floor(self) -> str:
        try:
            floor = json.loads(self.paths.tasks_ids.read_text())["floor"]
            if not isinstance(floor, int) or isinstance(floor, bool):
                raise ValueError("floor is not an integer")
        except FileNotFoundError:
            return "missing"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # The ids seen in tasks.json, the journal and the clock still apply.
            log.warning("task id file unreadable; ignored", extra={"error": str(exc)})
            return f"unreadable: {exc}"
        # Every id issued before is below the reserved floor.
        self._ids.last = max(self._ids.last, floor)
        return "ok"

    def _keep_damaged_journal(self) -> str:
        # Lines we could not read are kept in a copy; compaction would drop them.
        dest = move_aside(self.paths.tasks_journal, copy=True)
        log.warning("damaged journal lines skipped; a copy is kept", extra={"copy": str(dest)})
        return str(dest)

    def _publish(self, task: Task, previous: TaskState | None) -> None:
        if self.router is None:
            return
        data = task.summary()
        data.pop("env", None)  # may carry tokens; events are logged
        data["previous"] = str(previous) if previous else None
        self.router.publish(EVENT_FOR_STATE[task.state], data, "tasks")

    async def _prune_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.prune_interval_minutes * 60)
            try:
                await self.prune()
            except Exception:
                log.exception("pruning failed")


def _unlink_all(paths: list[Path]) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            p.unlink()
