"""TaskIndex keeps the size of its finished tasks and prunes the oldest by bytes (issue 8)."""

from __future__ import annotations

from dataclasses import replace

from aiwgd.tasks.model import Task, TaskState
from aiwgd.tasks.store.index import TASK_OVERHEAD, TaskIndex, footprint


def finished(i: int, size: int) -> Task:
    return Task(
        id=f"t{i:03d}",
        state=TaskState.COMPLETED,
        prompt="p" * size,
        created_at=float(i),
        finished_at=float(i),
    )


def test_finished_bytes_follow_every_change() -> None:
    index = TaskIndex()
    queued = Task(id="q", prompt="x" * 5000, metadata={"k": "v" * 100})
    index.put(queued)
    assert index.finished_bytes == 0  # only finished tasks count
    done = replace(queued, state=TaskState.COMPLETED, output_tail="o" * 300, error="e")
    index.put(done)
    assert index.finished_bytes == footprint(done) > 5000 + 300 + 100 + TASK_OVERHEAD
    index.put(replace(done, output_tail=""))  # a replayed change of a finished task
    assert index.finished_bytes == footprint(index.tasks["q"])
    index.drop("q")
    assert index.finished_bytes == 0


def test_expired_takes_the_oldest_until_the_rest_fit() -> None:
    index = TaskIndex()
    for i in range(10):
        index.put(finished(i, 10_000))
    each = footprint(index.tasks["t000"])
    budget = 3 * each + each // 2
    doomed = index.expired(cutoff=0.0, max_finished=100, max_bytes=budget)
    assert [t.id for t in doomed] == [f"t{i:03d}" for i in range(7)]
    for t in doomed:
        index.drop(t.id)
    assert index.finished_bytes <= budget
    assert not index.over_budget(budget) and index.over_budget(budget - each)
    # Count and bytes together: whichever cuts deeper wins, each task once.
    assert len(index.expired(cutoff=0.0, max_finished=1, max_bytes=budget)) == 2
    assert index.expired(cutoff=0.0, max_finished=100) == []
