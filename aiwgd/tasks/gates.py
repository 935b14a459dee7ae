"""May this queued task start now? Its dependencies (`after`), its group's cap and
whether its group is paused. (`start_at` is the queue's business: a task whose time has
not come waits on the queue's wall-clock timer, like a retry's backoff.)

At submit, `admit()` checks what the schema cannot (the `after` ids exist and make no
cycle, the time parses, the group is configured) and fills the Task's queue fields;
nothing is stored on refusal. While a task waits, `blocker()` says what holds it back:
("after", id) or ("group", name). The queue parks it under that key and asks
`blocked(key)` at each pump, so a thousand tasks waiting on one task cost one check,
not a thousand. `dependency()` answers FAILED when one of its `after` tasks ended
without completing (failed, timed out, cancelled, its own dependency failed, or it was
pruned): it can never start and becomes dependency_failed. All of it is computed from
the store, so a restart re-evaluates every waiting task with nothing else to recover.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from enum import Enum

from aiwgd.config.limits import Limits
from aiwgd.config.schema import parse, show
from aiwgd.tasks.groups import Groups
from aiwgd.tasks.model import Task, TaskState
from aiwgd.tasks.spec import SubmitParams, invalid
from aiwgd.tasks.store.store import TaskStore

__all__ = ["Gates", "Verdict", "rerun_params", "start_time"]

S = TaskState
MAX_AFTER = 1_000


# What holds a queued task back: ("after", a task id) or ("group", a group name).
Blocker = tuple[str, str]


class Verdict(Enum):
    START = "start"
    WAIT = "wait"
    FAILED = "failed"  # a dependency did not complete: dependency_failed


def start_time(run_at: str | None, delay_s: float | None, now: float) -> tuple[float | None, str]:
    """The wall time a task may start (None: at once) and the issue, if any ('' if none).

    `run_at` is ISO 8601; without a zone it is local time (what a person typing a time
    means)."""
    if run_at is not None and delay_s is not None:
        return None, "run_at, delay_s: give one of them, not both"
    if delay_s is not None:
        return (now + delay_s if delay_s > 0 else None), ""
    if run_at is None:
        return None, ""
    try:
        when = datetime.fromisoformat(run_at.strip())
    except ValueError:
        return None, (
            f"run_at: {show(run_at)} is not an ISO 8601 time "
            "(e.g. 2026-01-31T18:00, 2026-01-31T18:00:00+01:00)"
        )
    return when.timestamp(), ""  # naive: .timestamp() reads it as local time


class Gates:
    def __init__(self, store: TaskStore, groups: Groups, running: Callable[[], Iterable[str]]):
        self.store = store
        self.groups = groups
        self._running = running  # ids of the tasks holding a slot
        self.peak: dict[str, int] = {}  # most tasks of each group running at once
        # Queued tasks with `after`, so a pump looks at them only, not the whole queue;
        # the stored ones are added at the first look (after a restart too).
        self._dependents: set[str] = set()
        self._loaded = False

    # ---- at submit ---------------------------------------------------------------------
    def admit(self, p: SubmitParams, task: Task, rerun_of: str | None = None) -> Task:
        """Check the queue params and set them on `task`; InvalidParams with key paths."""
        issues: list[str] = []
        after = list(dict.fromkeys(p.after or ()))  # once each, in the order given
        if len(after) > MAX_AFTER:
            issues.append(f"after: lists {len(after)} tasks, at most {MAX_AFTER}")
        for i, dep in enumerate(after):
            if self.store.get(dep) is None:
                issues.append(f"after[{i}]: no task with id {show(dep)}")
        if not issues and (loop := self._cycle(task.id, after)):
            issues.append(f"after: makes a cycle ({' -> '.join(loop)})")
        start_at, issue = start_time(p.run_at, p.delay_s, time.time())
        if issue:
            issues.append(issue)
        if p.group is not None and not self.groups.known(p.group):
            have = ", ".join(self.groups.names()) or "none are configured in tasks.groups"
            issues.append(f"group: unknown group {show(p.group)} (groups: {have})")
        if issues:
            raise invalid(issues)
        task.name = p.name
        task.after = after or None
        task.start_at = start_at
        task.group = p.group
        task.rerun_of = rerun_of
        if after:
            self._dependents.add(task.id)
        return task

    def _cycle(self, new_id: str, after: list[str]) -> list[str]:
        """A path from `new_id` back to itself through the `after` links, or []."""
        seen: set[str] = set()
        stack: list[tuple[str, list[str]]] = [(dep, [new_id, dep]) for dep in after]
        while stack:
            node, path = stack.pop()
            if node == new_id:
                return path
            if node in seen:
                continue
            seen.add(node)
            found = self.store.get(node)
            for nxt in (found.after or ()) if found is not None else ():
                stack.append((nxt, [*path, nxt]))
        return []

    # ---- while it waits ----------------------------------------------------------------
    def dependency(self, task: Task) -> tuple[Verdict, str]:
        """START once every `after` task completed; FAILED (with why) if one cannot."""
        waiting = False
        for dep_id in task.after or ():
            dep = self.store.get(dep_id)
            if dep is None:
                return Verdict.FAILED, f"dependency {dep_id} is no longer stored"
            if dep.state == S.COMPLETED:
                continue
            if dep.terminal:
                return Verdict.FAILED, f"dependency {dep_id} ended {dep.state}"
            waiting = True
        return (Verdict.WAIT if waiting else Verdict.START), ""

    def blocker(self, task: Task) -> Blocker | None:
        """What holds `task` back now, or None: it may start. A FAILED dependency is a
        blocker too (until the pump records it dependency_failed)."""
        for dep_id in task.after or ():
            dep = self.store.get(dep_id)
            if dep is None or dep.state != S.COMPLETED:
                return ("after", dep_id)
        group = task.group
        if group is None:
            return None
        if self._group_full(group):
            return ("group", group)
        return None

    def _group_full(self, group: str) -> bool:
        if self.groups.paused(group):
            return True
        cap = self.groups.cap(group)
        busy = sum(1 for g in self.running_groups() if g == group)
        return cap is not None and busy >= cap

    def blocked(self, key: Blocker) -> bool:
        """Whether what `blocker()` said still holds (TaskQueue.unpark asks)."""
        kind, name = key
        if kind == "after":
            dep = self.store.get(name)
            return dep is not None and not dep.terminal
        return self._group_full(name)

    def hold(self, task_id: str) -> Blocker | None:
        """For TaskQueue.pop: what holds the task back, or None to let it through (a
        task no longer queued is let through too: the caller skips it)."""
        task = self.store.get(task_id)
        if task is None or task.state != S.QUEUED:
            return None
        key = self.blocker(task)
        if key is None:
            self._starting(task)
        return key

    def _starting(self, task: Task) -> None:
        if task.group is not None:
            busy = sum(1 for g in self.running_groups() if g == task.group)
            self.peak[task.group] = max(self.peak.get(task.group, 0), busy + 1)

    def at_once(self, task: Task) -> bool:
        """Whether a new submission may skip the queue (nothing holds it back)."""
        if task.start_at is not None and task.start_at > time.time():
            return False
        if self.blocker(task) is not None:
            return False
        self._starting(task)
        return True

    def failed(self) -> list[tuple[str, str]]:
        """(id, why) for each queued task whose dependency cannot complete now."""
        if not self._loaded:
            self._dependents.update(t.id for t in self.store.queued() if t.after)
            self._loaded = True
        out = []
        for task_id in list(self._dependents):
            task = self.store.get(task_id)
            if task is None:
                continue  # admitted, its record still on its way to disk
            if task.state != S.QUEUED:
                self._dependents.discard(task_id)
                continue
            found, why = self.dependency(task)
            if found == Verdict.FAILED:
                self._dependents.discard(task_id)
                out.append((task_id, why))
        return out

    def running_groups(self) -> list[str | None]:
        out: list[str | None] = []
        for task_id in self._running():
            task = self.store.get(task_id)
            out.append(task.group if task is not None else None)
        return out

    def stats(self) -> dict[str, dict[str, object]]:
        queued = [t.group for t in self.store.queued()]
        out = self.groups.stats(self.running_groups(), queued)
        for name, row in out.items():
            row["max_active"] = self.peak.get(name, 0)
        return out


def rerun_params(task: Task) -> SubmitParams:
    """A submission with `task`'s spec: what it runs, where (its cwd and executor), its
    env, priority, group, name, limits and isolation. Its `after` and start time are not
    copied: a rerun is asked for now, by someone who wants it to run now."""
    limits = None
    if task.limits is not None:
        known = {k: v for k, v in task.limits.items() if k in Limits.__dataclass_fields__}
        limits = parse(Limits, known, "limits")
    return SubmitParams(
        prompt=task.prompt,
        command=list(task.command) if task.command else None,
        agent=task.agent,
        priority=task.priority,
        cwd=task.cwd,
        env=dict(task.env),
        timeout_s=task.timeout_s,
        max_retries=task.max_retries,
        on_interrupt=task.on_interrupt,
        metadata=dict(task.metadata),
        limits=limits,
        isolate=task.isolate,
        base=task.base,
        group=task.group,
        name=task.name,
        executor=task.executor or "local",  # where it ran, even if the defaults changed
    )
