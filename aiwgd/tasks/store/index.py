"""The task store's memory: every task by id, counts per state, queries, retention.

Pure in-memory state with no I/O, kept apart from aiwgd/store.py (which makes each
change durable first). Insertion order is creation order (ids are minted in order and
replay appends), so "newest first" is a reversed walk and needs no sort.

Retention bounds finished tasks by age, by count and by bytes: `finished_bytes` is
the sum of `footprint()` over finished tasks, kept up to date as they come and go (a
finished task never changes again, so its footprint is computed once each way).
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from aiwgd.tasks.model import FIELD_NAMES, TERMINAL, Task, TaskState, upgrade_fields

log = logging.getLogger("aiwgd.taskindex")

IMMUTABLE = frozenset({"id", "created_at"})
UPDATABLE = frozenset(FIELD_NAMES) - IMMUTABLE
# What a stored task costs besides its variable-size fields: the Task object, its
# fixed fields and the index's slot (bench/store.py: about 800 bytes a task).
TASK_OVERHEAD = 800
# Built once: json.dumps with options builds an encoder per call (footprint() runs for
# every finished task loaded at start).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def footprint(task: Task) -> int:
    """Roughly the memory a task holds: the size of its variable fields plus overhead.

    Characters stand in for bytes: cheap to count, and a finished task's memory is
    mostly text (prompt, output tail, metadata, env).
    """
    n = TASK_OVERHEAD + len(task.output_tail) + len(task.prompt or "") + len(task.error or "")
    n += len(task.result or "")  # a stream-json agent's answer
    if task.command:
        n += sum(len(arg) for arg in task.command)
    if task.env:
        n += sum(len(k) + len(v) for k, v in task.env.items())
    if task.metadata:
        n += len(_ENCODER.encode(task.metadata))
    return n


class TaskIndex:
    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.by_state: dict[TaskState, int] = dict.fromkeys(TaskState, 0)
        self.finished_bytes = 0  # sum of footprint() over finished tasks

    def __len__(self) -> int:
        return len(self.tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.tasks

    def get(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    def put(self, task: Task) -> None:
        old = self.tasks.get(task.id)
        if old is not None:
            self.by_state[old.state] -= 1
            if old.state in TERMINAL:
                self.finished_bytes -= footprint(old)
        self.tasks[task.id] = task
        self.by_state[task.state] += 1
        if task.state in TERMINAL:
            self.finished_bytes += footprint(task)

    def drop(self, task_id: str) -> Task | None:
        task = self.tasks.pop(task_id, None)
        if task is not None:
            self.by_state[task.state] -= 1
            if task.state in TERMINAL:
                self.finished_bytes -= footprint(task)
        return task

    def restore(self, tasks: Iterable[Task]) -> None:
        """Put back tasks whose removal the disk refused, in creation order."""
        for task in tasks:
            if task.id not in self.tasks:
                self.put(task)
        self.tasks = dict(sorted(self.tasks.items(), key=lambda item: item[1].created_at))

    def counts(self) -> dict[str, int]:
        return {str(s): n for s, n in self.by_state.items()}

    def finished(self) -> int:
        return sum(self.by_state[s] for s in TERMINAL)

    def in_state(self, state: TaskState) -> list[Task]:
        """Tasks in one state, oldest first."""
        return [t for t in self.tasks.values() if t.state == state]

    def page(
        self,
        state: str | None = None,
        agent: str | None = None,
        source: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Task], int]:
        """A page of tasks, newest first, and how many match in all."""
        it: Iterator[Task] = reversed(self.tasks.values())
        if state is not None:
            it = (t for t in it if t.state == state)
        if agent is not None:
            it = (t for t in it if t.agent == agent)
        if source is not None:
            it = (t for t in it if t.source == source)
        page = list(itertools.islice(it, offset, offset + limit))
        if agent is None and source is None:
            # Counts per state are kept up to date: no scan needed.
            total = self.by_state.get(TaskState(state), 0) if state else len(self.tasks)
        elif page:
            total = offset + len(page) + sum(1 for _ in it)
        else:  # the offset ran past the end (or nothing matches): count from scratch
            total = sum(1 for _ in self._matching(state, agent, source))
        return page, total

    def _matching(self, state: str | None, agent: str | None, source: str | None) -> Iterator[Task]:
        for t in self.tasks.values():
            if (
                (state is None or t.state == state)
                and (agent is None or t.agent == agent)
                and (source is None or t.source == source)
            ):
                yield t

    def replay(
        self, entries: list[dict[str, Any]], after_seq: int, on_add: Callable[[str], None]
    ) -> tuple[int, int]:
        """Apply entries newer than the snapshot; returns (applied, skipped as bad)."""
        applied = skipped = 0
        for entry in entries:
            if entry["seq"] <= after_seq:
                continue  # already in the snapshot (a crash between rename and swap)
            try:
                added = self.apply(entry)
            except (KeyError, TypeError, ValueError) as exc:
                skipped += 1
                log.warning("journal entry skipped", extra={"seq": entry["seq"], "error": str(exc)})
                continue
            if added is not None:
                on_add(added.id)
            applied += 1
        return applied, skipped

    def apply(self, entry: dict[str, Any]) -> Task | None:
        """Apply one journal entry (replay); returns the task an "add" brought in.

        Entries hold absolute values, so applying one twice, or over a snapshot that
        already includes it, gives the same result.
        """
        op = entry["op"]
        if op == "add":
            task = Task.from_dict(entry["task"])
            self.put(task)
            return task
        if op == "set":
            old = self.tasks.get(entry["id"])
            if old is None:
                return None  # pruned later, or lost with a damaged snapshot
            fields = {k: v for k, v in upgrade_fields(entry["fields"]).items() if k in UPDATABLE}
            if "state" in fields:
                fields["state"] = TaskState(fields["state"])
            self.put(old.evolve(**fields))
            return None
        if op == "del":
            for task_id in entry["ids"]:
                self.drop(task_id)
            return None
        raise ValueError(f"unknown op {op!r}")

    def expired(self, cutoff: float, max_finished: int, max_bytes: int | None = None) -> list[Task]:
        """Finished tasks to prune: finished before `cutoff`, then the oldest beyond
        `max_finished`, then the oldest until the rest fit in `max_bytes`."""
        finished = [t for t in self.tasks.values() if t.state in TERMINAL]
        doomed = [t for t in finished if (t.finished_at or t.created_at) < cutoff]
        excess = len(finished) - len(doomed) - max_finished
        over = self.finished_bytes - sum(footprint(t) for t in doomed) - (max_bytes or 0)
        if excess > 0 or (max_bytes is not None and over > 0):
            gone = {t.id for t in doomed}
            keep = sorted(
                (t for t in finished if t.id not in gone),
                key=lambda t: (t.finished_at or t.created_at, t.id),
            )
            cut = max(excess, 0)
            over -= sum(footprint(t) for t in keep[:cut])
            while max_bytes is not None and over > 0 and cut < len(keep):
                over -= footprint(keep[cut])
                cut += 1
            doomed.extend(keep[:cut])
        return doomed

    def over_budget(self, max_bytes: int) -> bool:
        """Whether finished tasks hold more than `max_bytes` (see footprint())."""
        return self.finished_bytes > max_bytes
