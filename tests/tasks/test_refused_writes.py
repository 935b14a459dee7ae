"""The supervisor when the task store's disk refuses writes, driven in-process with a
real store whose journal descriptor refuses them (EBADF) for a while.

- A submission that would start at once (a free slot) and whose combined queued +
  running record is refused: the submitter gets Unavailable, nothing is stored or
  started, the slot is free again, and the next submission works.
- The fail-safe: a task whose supervision broke is recorded failed, and if the store
  refuses that too it is tried again in the background until the disk takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiwgd import errors
from aiwgd.tasks import failsafe
from aiwgd.tasks.failsafe import FailSafe
from aiwgd.tasks.model import Task, TaskState
from aiwgd.tasks.store.store import TaskStore
from tests.taskhelp import prog
from tests.tasks.test_inprocess import supervisor_in


@contextlib.contextmanager
def refusing(store: TaskStore) -> Iterator[None]:
    """The journal refuses every write until the block ends."""
    journal = store.storelog.journal
    good = journal._fh
    with open(journal.path, "rb", buffering=0) as read_only:
        journal._fh = read_only
        try:
            yield
        finally:
            journal._fh = good


def test_a_refused_start_at_once_stores_and_starts_nothing(project: Path) -> None:
    async def main() -> None:
        async with supervisor_in(project, cap=1) as r:
            sup, store = r.supervisor, r.supervisor.store
            with refusing(store), pytest.raises(errors.Unavailable, match="cannot write"):
                await sup.submit({"command": prog("--say", "lost")}, "test")
            assert len(store) == 0 and len(r.children) == 0
            stats = sup.stats()
            assert stats["running"] == 0 and stats["totals"]["submitted"] == 0
            # The slot is free again: the next submission starts at once and completes.
            task = await sup.submit({"command": prog("--say", "kept")}, "test")
            done = await sup.wait(task["id"], 20)
            assert done["state"] == "completed" and "kept" in done["output_tail"]
            assert sup.stats()["totals"]["submitted"] == 1

    asyncio.run(main())


def test_the_fail_safe_keeps_trying_until_the_disk_takes_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(failsafe, "RETRY_S", 0.01)

    async def main() -> None:
        async with supervisor_in(project) as r:
            store = r.supervisor.store
            task = await store.add(Task(id=store.new_id(), command=["true"]))
            failed: list[str] = []
            recorded = asyncio.Event()

            def on_failed(task_id: str) -> None:
                failed.append(task_id)
                recorded.set()

            safe = FailSafe(store, on_failed)
            with refusing(store):
                await safe.record(task.id)  # refused: goes on in the background
                assert failed == [] and store.get(task.id) == task
            await asyncio.wait_for(recorded.wait(), 10)
            got = store.get(task.id)
            assert failed == [task.id] and got is not None
            assert got.state is TaskState.FAILED and got.error == "internal error while supervising"

    asyncio.run(main())
