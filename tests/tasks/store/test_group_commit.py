"""Group commit in the task store's journal: the changes made in one turn of the event
loop share one write + fsync, every one is still acknowledged only once it is on disk,
and a writer cancelled while its change is on the way never loses the accounting.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aiwgd import errors
from aiwgd.config import Paths
from aiwgd.config.tasks import TasksSection
from aiwgd.tasks.model import Task, TaskState
from aiwgd.tasks.store.store import TaskStore


async def opened(root: Path) -> TaskStore:
    store = TaskStore(Paths(root), TasksSection())
    await store.start()
    return store


def new_task(store: TaskStore) -> Task:
    return Task(id=store.new_id(), command=["echo", "hi"])


def test_changes_made_in_one_loop_turn_share_one_fsync(project: Path) -> None:
    async def main() -> None:
        store = await opened(project)
        before = store.status()["journal"]["fsyncs"]
        # gather starts every add in the same turn: one handoff, one write + fsync.
        tasks = await asyncio.gather(*(store.add(new_task(store)) for _ in range(2000)))
        assert store.status()["journal"]["fsyncs"] == before + 1
        ids = [t.id for t in tasks]
        await asyncio.gather(*(store.update(i, state="running") for i in ids))
        assert store.status()["journal"]["fsyncs"] == before + 2
        await store.stop(fast=True)  # no final compaction: read back from the journal
        again = await opened(project)
        assert [t.id for t in again.found_running()] == ids
        await again.stop()

    asyncio.run(main())


def test_a_cancelled_writer_still_gets_its_change_recorded(project: Path) -> None:
    async def main() -> None:
        store = await opened(project)
        task = await store.add(new_task(store))
        writer = asyncio.create_task(store.update(task.id, state="running"))
        await asyncio.sleep(0)  # its line is queued now
        assert task.id in store.storelog.inflight
        writer.cancel()
        # The next change of the task waits for the cancelled one to be on disk, and is
        # built on it (running -> completed is allowed, queued -> completed is not).
        done = await store.update(task.id, state="completed")
        assert done.state is TaskState.COMPLETED and not store.storelog.inflight
        with pytest.raises(asyncio.CancelledError):
            await writer
        assert store.status()["journal"]["entries"] == 3
        await store.stop(fast=True)
        again = await opened(project)
        got = again.get(task.id)
        assert got is not None and got.state is TaskState.COMPLETED and got.started_at
        await again.stop()

    asyncio.run(main())


def test_a_refused_turn_refuses_every_change_in_it(project: Path) -> None:
    async def main() -> None:
        store = await opened(project)
        kept = await store.add(new_task(store))
        journal = store.storelog.journal
        good = journal._fh
        with open(journal.path, "rb", buffering=0) as read_only:
            journal._fh = read_only  # writes fail (EBADF)
            try:
                results = await asyncio.gather(
                    store.add(new_task(store)),
                    store.update(kept.id, state="running"),
                    return_exceptions=True,
                )
            finally:
                journal._fh = good
        assert all(isinstance(r, errors.Unavailable) for r in results), results
        assert len(store) == 1 and store.get(kept.id) == kept  # both undone in memory
        assert store.status()["journal"]["entries"] == 1
        ok = await store.update(kept.id, state="running")
        assert ok.state is TaskState.RUNNING and store.last_error is None
        await store.stop(fast=True)
        again = await opened(project)
        assert len(again) == 1 and again.found_running() == [again.get(kept.id)]
        await again.stop()

    asyncio.run(main())
