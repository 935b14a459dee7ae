"""Tasks in git worktrees, and tasks that resume an earlier task's agent session.

The glue between the supervisor and aiwgd.agents.worktree, so the supervisor only
calls these hooks (and the task RPC methods view, diff, merge and discard):

    task = await isolation.admit(params, task)   # at submit: checks, fills the fields
    run = await isolation.enter(task)            # at attempt start: the Task to spawn
    isolation.start() / await isolation.stop()   # the retention sweep (below)

`admit` decides `isolate` (the submission's, else agent.isolate for prompts), checks
the project is a repository and the base a commit (Worktrees.validate: nothing is
created yet), and for `resume` copies the earlier task's session id and worktree.
`enter` makes (or, on a retry or after a restart, finds again: the path follows from
the task id) the worktree before the attempt starts, records it in the task, and
returns the task with its cwd moved to the same relative place inside it. A worktree
that cannot be made fails the attempt with git's reason; Worktrees rolls back.

Review (task.get, task.diff, task.merge, task.discard) computes the worktree's status
with a few git calls in the RPC handler, never in the supervisor's path.

Every git call runs on one thread of its own with its own event loop (`_GitLoop`): the
daemon is a child subreaper whose SIGCHLD handler waits for zombie children of its
main thread that aiwgd.procs does not own, which would steal the exit status of a git
run by asyncio on the main loop (it then reads 255). Children of another thread are
not the reaper's to see; and the git work stays off the main loop besides.

Retention: the store prunes finished tasks by itself; a sweep at start and every
`tasks.prune_interval_minutes` removes worktrees no stored task refers to any more,
when their work is merged (Worktrees.prune never deletes unmerged work; each one it
keeps is logged once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from aiwgd import errors
from aiwgd.agents.worktree import Worktree, WorktreeError, Worktrees
from aiwgd.config import Config
from aiwgd.tasks.model import Task, TaskState
from aiwgd.tasks.spec import SubmitParams, invalid
from aiwgd.tasks.store import retention
from aiwgd.tasks.store.store import TaskStore

log = logging.getLogger("aiwgd.isolation")

WORKTREE = "worktree"
_ACTIVE = (str(TaskState.QUEUED), str(TaskState.RUNNING))
T = TypeVar("T")


class _GitLoop:
    """An event loop on a thread of its own, started on first use, for git calls."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="aiwgd-git", daemon=True
            )
            self._thread.start()
        # Cancelling the caller cancels the call there (and gitcmd kills its git).
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        loop.close()


class IsolationFailed(Exception):
    """The attempt cannot start in its worktree; the message (git's reason) is one line."""


class Isolation:
    def __init__(self, config_of: Callable[[], Config], root: Path, store: TaskStore) -> None:
        self._config_of = config_of
        self.root = root
        self.store = store
        self._wts: Worktrees | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._kept: set[str] = set()  # unmerged worktrees of pruned tasks, logged once
        self._git = _GitLoop()

    def worktrees(self) -> Worktrees:
        prefix = self._config_of().agent.worktree_prefix
        if self._wts is None or self._wts.branch_prefix != prefix:
            self._wts = Worktrees(self.root, prefix)
        return self._wts

    # ---- submit ------------------------------------------------------------------------
    async def admit(self, p: SubmitParams, task: Task) -> Task:
        """The prepared task with its isolation and session fields, or InvalidParams."""
        if p.resume is not None:
            return self._resume(p, task)
        isolate = p.isolate or (self._config_of().agent.isolate if task.prompt else None)
        if isolate != WORKTREE:
            if p.base is not None:
                raise invalid(['base: only an isolated task (isolate "worktree") has a base'])
            return task
        rel = os.path.relpath(task.cwd or self.root, self.root)
        if rel == ".." or rel.startswith("../"):
            raise invalid(
                [f"cwd: {task.cwd} is outside the project; an isolated task runs in a worktree"]
            )
        try:
            await self._git.run(self.worktrees().validate(p.base))
        except WorktreeError as exc:
            raise invalid([f"{'base' if p.base else 'isolate'}: {exc}"]) from None
        return replace(task, isolate=WORKTREE, base=p.base)

    def _resume(self, p: SubmitParams, task: Task) -> Task:
        """A follow-up runs where the session it resumes ran: the same worktree (none is
        made for it) or the project, and by default the same cwd."""
        earlier = self._resumable(str(p.resume), task)
        fields: dict[str, Any] = {"resume": earlier.id, "resume_session": earlier.session_id}
        if p.cwd is None:
            fields["cwd"] = earlier.cwd
        if earlier.worktree is None:
            if p.isolate == WORKTREE or p.base is not None:
                raise invalid(
                    [f"isolate: task {earlier.id} ran in the project, where its session resumes"]
                )
        elif p.base is not None or p.isolate == "none":
            key = "base" if p.base else "isolate"
            raise invalid([f"{key}: task {earlier.id}'s session resumes in its worktree"])
        else:
            fields.update(isolate=WORKTREE, worktree=dict(earlier.worktree))
        return replace(task, **fields)

    def _resumable(self, task_id: str, task: Task) -> Task:
        if task.prompt is None:
            raise invalid(["resume: only a prompt task can resume an agent session"])
        earlier = self.store.get(task_id)
        if earlier is None:
            raise invalid([f"resume: no task with id {task_id!r}"])
        if earlier.prompt is None:
            raise invalid([f"resume: task {task_id} is a command, not an agent prompt"])
        if not earlier.session_id:
            raise invalid(
                [f"resume: task {task_id} has no agent session id (its agent reported none)"]
            )
        if not earlier.terminal:
            # Two agents in one session (and one worktree) at once would trample each other.
            raise invalid(
                [f"resume: task {task_id} is still {earlier.state}; resume it once it ends"]
            )
        return earlier

    # ---- attempt start -----------------------------------------------------------------
    async def enter(self, task: Task) -> Task:
        """The task to spawn: in its worktree, made now unless it exists. The worktree is
        recorded in the store before the spawn, so a kill -9 after it loses nothing."""
        if task.isolate != WORKTREE:
            return task
        wts = self.worktrees()
        owner = (task.worktree or {}).get("task_id", task.id)
        try:
            if owner != task.id:  # a resumed session: its task's worktree, never remade
                wt = await self._git.run(wts.find(owner))
                if wt is None:
                    raise IsolationFailed(f"the worktree of task {owner} is gone (discarded?)")
            else:
                wt = await self._git.run(wts.create(task.id, task.base))
            workdir = await self._git.run(wts.workdir(wt))
        except WorktreeError as exc:
            raise IsolationFailed(str(exc)) from None
        if task.worktree != wt.to_dict():
            task = await self.store.update(task.id, worktree=wt.to_dict())
        rel = os.path.relpath(task.cwd or self.root, self.root)
        return replace(task, cwd=os.path.normpath(os.path.join(workdir, rel)))

    # ---- review ------------------------------------------------------------------------
    async def view(self, out: dict[str, Any]) -> dict[str, Any]:
        """task.get's dict with the worktree's status (commits, dirty, merged...)."""
        recorded = out.get("worktree")
        if not recorded:
            return out
        try:
            status = await self._git.run(self.worktrees().status(Worktree.from_dict(recorded)))
        except WorktreeError as exc:
            status = {**recorded, "error": str(exc)}
        return {**out, "worktree": status}

    def _worktree_of(self, task_id: str, changing: bool = False) -> Worktree:
        task = self.store.get(task_id)
        if task is None:
            raise errors.NotFound(f"no task with id {task_id!r}", {"id": task_id})
        if task.worktree is None:
            why = "it has not started yet" if task.isolate == WORKTREE else "it is not isolated"
            raise errors.NotFound(f"task {task_id} has no worktree: {why}", {"id": task_id})
        wt = Worktree.from_dict(task.worktree)
        if changing:
            for state in _ACTIVE:
                for t in self.store.list(state=state, limit=10_000)[0]:
                    if t.worktree and t.worktree.get("path") == wt.path:
                        raise errors.Conflict(
                            f"task {t.id} is {t.state} in this worktree; wait for it to end",
                            {"id": task_id, "busy": t.id},
                        )
        return wt

    async def diff(self, task_id: str) -> dict[str, Any]:
        wt = self._worktree_of(task_id)
        try:
            text = await self._git.run(self.worktrees().diff(wt))
        except WorktreeError as exc:
            raise errors.Conflict(str(exc), {"id": task_id}) from None
        return {"id": task_id, "branch": wt.branch, "base": wt.base, "diff": text}

    async def merge(self, task_id: str) -> dict[str, Any]:
        wt = self._worktree_of(task_id, changing=True)
        try:
            done = await self._git.run(self.worktrees().merge(wt))
        except WorktreeError as exc:
            raise errors.Conflict(str(exc), {"id": task_id}) from None
        return {"id": task_id, "branch": wt.branch, **done}

    async def discard(self, task_id: str, force: bool) -> dict[str, Any]:
        wt = self._worktree_of(task_id, changing=True)
        try:
            await self._git.run(self.worktrees().discard(wt, force=force))
        except WorktreeError as exc:
            raise errors.Conflict(str(exc), {"id": task_id}) from None
        return {"id": task_id, "branch": wt.branch, "path": wt.path, "discarded": True}

    # ---- retention ---------------------------------------------------------------------
    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_periodically(), name="worktree-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self._git.close()

    async def _sweep_periodically(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("worktree sweep failed")
            await asyncio.sleep(self._config_of().tasks.prune_interval_minutes * 60)

    async def sweep(self) -> list[str]:
        """Remove the merged worktrees of pruned tasks; the task ids removed."""
        sweep = retention.prune_worktrees(self.worktrees(), self._referenced(), self._kept)
        return await self._git.run(sweep)

    def _referenced(self) -> set[str]:
        """Ids of stored tasks, and of the tasks whose worktree a stored one resumed."""
        tasks, _ = self.store.list(limit=max(1, len(self.store)))
        return {t.id for t in tasks} | {t.worktree["task_id"] for t in tasks if t.worktree}
