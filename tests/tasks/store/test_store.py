"""TaskStore on real files: transitions, durability across reopen, compaction, retention.

The store is a plain object, so these tests drive it directly in an event loop; the
crash tests (a writer killed with SIGKILL, damaged files, the real daemon) are in
tests/tasks/store/test_recovery.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from aiwgd import errors
from aiwgd.config import Paths, ValidationError, parse_config
from aiwgd.config.tasks import TasksSection
from aiwgd.events.router import EventRouter
from aiwgd.tasks.model import (
    TERMINAL,
    TRANSITIONS,
    IdGenerator,
    InvalidTransition,
    Task,
    TaskState,
    check_transition,
    parse_priority,
)
from aiwgd.tasks.store.store import TaskStore

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def new_task(store: TaskStore, **fields: Any) -> Task:
    fields.setdefault("command", ["echo", "hi"])
    return Task(id=store.new_id(), **fields)


async def opened(root: Path, **cfg: Any) -> TaskStore:
    store = TaskStore(Paths(root), TasksSection(**cfg))
    await store.start()
    return store


def snapshot(root: Path) -> dict[str, Any]:
    return json.loads(Paths(root).tasks_file.read_text())


# ---- the model ------------------------------------------------------------------------
def test_transition_table_is_the_only_rule() -> None:
    allowed = {
        ("queued", "running"),
        ("queued", "cancelled"),
        ("queued", "dependency_failed"),
        ("running", "completed"),
        ("running", "failed"),
        ("running", "timed_out"),
        ("running", "cancelled"),
        ("running", "interrupted"),
        ("running", "queued"),
        ("interrupted", "queued"),
        ("interrupted", "failed"),
    }
    for old, new in itertools.product(TaskState, TaskState):
        if (old, new) in allowed:
            check_transition("t", old, new)
        else:
            with pytest.raises(InvalidTransition):
                check_transition("t", old, new)
    assert all(not TRANSITIONS[s] for s in TERMINAL)


def test_invalid_transition_is_a_conflict_with_a_clear_message() -> None:
    with pytest.raises(InvalidTransition) as info:
        check_transition("abc", "completed", "running")
    assert info.value.code == errors.CONFLICT
    assert "task abc is completed; it cannot become running" in info.value.message
    assert info.value.data == {"id": "abc", "state": "completed", "requested": "running"}


def test_priorities() -> None:
    assert [parse_priority(p) for p in ("low", "normal", "HIGH", "critical")] == [-10, 0, 10, 20]
    assert parse_priority(7) == 7 and parse_priority("-3") == -3
    for bad in ("urgent", True, 1.5, None):
        with pytest.raises(ValueError, match="is not a priority"):
            parse_priority(bad)  # type: ignore[arg-type]


def test_ids_are_short_sorted_and_unique() -> None:
    gen = IdGenerator()
    ids = [gen.new() for _ in range(5000)]
    assert len(set(ids)) == 5000
    assert ids == sorted(ids)
    assert all(len(i) <= 11 and i.isalnum() and i.islower() for i in ids)
    # A floor from an id seen in the store wins over the clock.
    later = IdGenerator()
    later.observe(ids[-1])
    later.last += 10**9  # as if a stored id came from a clock far ahead
    floor = later.new()
    fresh = IdGenerator()
    fresh.observe(floor)
    assert fresh.new() > floor


def test_task_round_trips_and_summary_has_no_output() -> None:
    t = Task(
        id="x1",
        prompt="fix it",
        agent="coder",
        env={"A": "1"},
        metadata={"k": [1]},
        output_tail="lots of output",
        state=TaskState.RUNNING,
    )
    d = t.to_dict()
    assert d["state"] == "running" and json.loads(json.dumps(d)) == d
    assert d["env"] == {"A": "<redacted>"}  # env values are never stored or shown
    assert Task.from_dict({**d, "from_a_newer_version": 1}) == replace(t, env=d["env"])
    assert "output_tail" not in t.summary() and t.summary()["prompt"] == "fix it"


def test_tasks_config_section_validates() -> None:
    cfg = parse_config({"tasks": {"retention_days": 3, "requeue_interrupted": False}})
    assert cfg.tasks.retention_days == 3 and cfg.tasks.requeue_interrupted is False
    assert cfg.tasks.output_tail_bytes == 16384 and cfg.tasks.log_max_bytes == 10 * 1024 * 1024
    with pytest.raises(ValidationError) as info:
        parse_config({"tasks": {"retention_days": 0, "max_finished": -1, "compact_every": "x"}})
    text = str(info.value)
    assert "tasks.retention_days: 0.0 is out of range (must be > 0)" in text
    assert "tasks.max_finished: -1 is out of range (must be >= 0)" in text
    assert 'tasks.compact_every: "x" is not an integer' in text


# ---- the store ------------------------------------------------------------------------
def test_add_update_survive_reopen_and_terminal_never_changes(project: Path) -> None:
    async def main() -> None:
        router = EventRouter()
        store = TaskStore(Paths(project), TasksSection(), router)
        await store.start()
        a = await store.add(new_task(store, prompt=None, command=["make", "test"], priority=10))
        b = await store.add(new_task(store, command=None, prompt="write docs", agent="doc"))
        a = await store.update(a.id, state="running", runner={"pid": 4242})
        assert a.started_at is not None and a.state is TaskState.RUNNING
        a = await store.update(a.id, state="completed", exit_code=0, output_tail="ok\n")
        assert a.finished_at is not None
        for change in ({"state": "running"}, {"state": "queued"}, {"error": "x"}):
            with pytest.raises(InvalidTransition, match="which is final"):
                await store.update(a.id, **change)
        with pytest.raises(InvalidTransition, match="cannot become completed"):
            await store.update(b.id, state="completed")
        with pytest.raises(errors.NotFound):
            await store.update("nope", state="running")
        with pytest.raises(ValueError, match="cannot update task field"):
            await store.update(b.id, id="other")
        with pytest.raises(errors.Conflict, match="already exists"):
            await store.add(Task(id=b.id, prompt="again"))
        types = [e.type for e in router.history]
        assert types == ["task.queued", "task.queued", "task.started", "task.completed"]
        done = router.history[-1].data
        assert done["previous"] == "running" and done["exit_code"] == 0
        assert "env" not in done and "output_tail" not in done
        await store.stop()

        again = await opened(project)
        got = again.get(a.id)
        assert got is not None and got.to_dict() == a.to_dict()
        assert again.get(b.id) == b
        assert again.counts()["completed"] == 1 and again.counts()["queued"] == 1
        await again.stop()

    run(main())


def test_retry_is_running_to_queued_with_the_next_attempt(project: Path) -> None:
    async def main() -> None:
        store = await opened(project)
        t = await store.add(new_task(store, max_retries=2))
        await store.update(t.id, state="running", runner={"pid": 1})
        with pytest.raises(InvalidTransition, match="retry only; pass attempt=2"):
            await store.update(t.id, state="queued")
        t = await store.update(t.id, state="queued", attempt=2, exit_code=1, retry_at=1.0)
        assert t.attempt == 2 and t.state is TaskState.QUEUED and t.exit_code == 1
        await store.stop()

    run(main())


def test_a_held_task_never_changes_under_its_holder(project: Path) -> None:
    async def main() -> None:
        store = await opened(project)
        t = await store.add(new_task(store))
        t2 = await store.update(t.id, state="running")
        assert t.state is TaskState.QUEUED and t2.state is TaskState.RUNNING
        assert store.get(t.id) is t2
        await store.stop()

    run(main())


def test_list_is_newest_first_with_filters_and_totals(project: Path) -> None:
    async def main() -> None:
        store = await opened(project)
        made = []
        for i in range(30):
            agent = "a" if i % 3 == 0 else None
            made.append(
                await store.add(new_task(store, agent=agent, source="cli" if i % 2 else "rpc"))
            )
        await store.update(made[5].id, state="cancelled")
        page, total = store.list(limit=5)
        assert [t.id for t in page] == [t.id for t in reversed(made)][:5] and total == 30
        page, total = store.list(limit=5, offset=28)
        assert [t.id for t in page] == [made[1].id, made[0].id] and total == 30
        page, total = store.list(agent="a", limit=3)
        assert total == 10 and [t.id for t in page] == [made[27].id, made[24].id, made[21].id]
        page, total = store.list(agent="a", source="cli", offset=100)
        assert page == [] and total == 5
        assert store.list(state="cancelled") == ([store.get(made[5].id)], 1)
        assert store.list(state="queued", limit=0) == ([], 29)
        assert [t.id for t in store.queued()] == [t.id for t in made if t is not made[5]]
        assert store.counts()["cancelled"] == 1
        await store.stop()

    run(main())


def test_concurrent_writers_share_fsyncs(project: Path) -> None:
    async def main() -> None:
        store = await opened(project)
        tasks = await asyncio.gather(*(store.add(new_task(store)) for _ in range(500)))
        assert len({t.id for t in tasks}) == 500
        # Group commit: far fewer fsyncs than acknowledged writes.
        assert store.status()["journal"]["fsyncs"] < 250
        await store.stop()
        assert len(snapshot(project)["tasks"]) == 500
        again = await opened(project)
        assert len(again) == 500
        await again.stop()

    run(main())


def test_compaction_keeps_tasks_json_valid_and_complete(project: Path) -> None:
    async def main() -> None:
        store = await opened(project, compact_every=20)
        ids = []
        for i in range(120):
            t = await store.add(new_task(store, metadata={"i": i}))
            ids.append(t.id)
            if i % 4 == 0:
                await store.update(t.id, state="running")
            # tasks.json is replaced atomically: whenever it exists it is whole JSON.
            if Paths(project).tasks_file.exists():
                assert isinstance(snapshot(project)["tasks"], list)
        await store.compact()
        doc = snapshot(project)
        assert [r["id"] for r in doc["tasks"]] == ids
        assert sum(r["state"] == "running" for r in doc["tasks"]) == 30
        assert store.status()["compactions"] >= 5
        # The journal holds only what came after the last compaction.
        assert store.status()["journal"]["entries"] == 0
        assert Paths(project).tasks_journal.stat().st_size == 0
        t = await store.update(ids[1], state="cancelled")
        await store.stop()
        doc = snapshot(project)
        assert {r["id"]: r["state"] for r in doc["tasks"]}[t.id] == "cancelled"
        assert doc["seq"] == store.storelog.seq

    run(main())


def test_recover_requeues_or_fails_running_tasks(project: Path) -> None:
    async def main() -> None:
        router = EventRouter()
        store = TaskStore(Paths(project), TasksSection(), router)
        await store.start()
        a = await store.add(new_task(store, max_retries=1))  # a requeue uses a retry
        b = await store.add(new_task(store, max_retries=1))
        await store.update(
            a.id, state="running", runner={"pid": 99999, "pgid": 99999, "create_time": 1.0}
        )
        await store.update(b.id, state="running")
        assert [t.id for t in store.found_running()] == [a.id, b.id]
        a2 = await store.recover(a.id)
        assert a2.state is TaskState.QUEUED and a2.attempt == 2 and a2.runner is None
        assert "interrupted" in (a2.error or "")
        store.cfg = TasksSection(requeue_interrupted=False)
        b2 = await store.recover(b.id)
        assert b2.state is TaskState.FAILED and b2.finished_at is not None
        types = [e.type for e in router.history][-4:]
        assert types == ["task.interrupted", "task.queued", "task.interrupted", "task.failed"]
        await store.stop()

    run(main())


def test_retention_prunes_old_and_excess_finished_tasks_with_logs(project: Path) -> None:
    async def main() -> None:
        store = await opened(project, retention_days=1, max_finished=3)
        now = time.time()
        old, recent = [], []
        for i in range(6):
            t = await store.add(new_task(store))
            await store.update(t.id, state="running")
            finished_at = now - 3 * 86_400 if i < 2 else now - 100 + i
            await store.update(t.id, state="completed", finished_at=finished_at)
            Path(store.log_path(t.id)).write_text("output\n")
            (old if i < 2 else recent).append(t.id)
        running = await store.add(new_task(store))
        await store.update(running.id, state="running")
        queued = await store.add(new_task(store))
        assert await store.prune() == 3  # 2 too old + 1 beyond max_finished
        gone = [*old, recent[0]]
        assert all(store.get(i) is None for i in gone)
        assert all(not Path(store.log_path(i)).exists() for i in gone)
        kept = recent[1:]
        assert all(store.get(i) is not None and Path(store.log_path(i)).exists() for i in kept)
        assert store.get(running.id) and store.get(queued.id)
        assert store.status()["pruned"] == 3
        await store.stop()
        again = await opened(project, max_finished=3)
        assert sorted(t.id for t in again.list(limit=100)[0]) == sorted(
            [*recent[1:], running.id, queued.id]
        )
        await again.stop()

    run(main())


def test_a_task_added_while_the_disk_fails_is_not_kept(project: Path) -> None:
    async def main() -> None:
        store = await opened(project)
        await store.add(new_task(store))
        # A real write failure: the journal's descriptor now refuses writes (EBADF).
        journal = store.storelog.journal
        ro = os.open(journal.path, os.O_RDONLY)
        old_fh = journal._fh
        journal._fh = os.fdopen(ro, "rb", buffering=0)
        t = new_task(store)
        with pytest.raises(errors.Unavailable, match="cannot write to disk"):
            await store.add(t)
        assert store.get(t.id) is None and len(store) == 1
        assert "journal write" in store.status()["last_error"]
        journal._fh.close()
        journal._fh = old_fh
        ok = await store.add(new_task(store))
        await store.stop()
        again = await opened(project)
        assert len(again) == 2 and again.get(ok.id) is not None
        await again.stop()

    run(main())


def test_a_busy_store_prunes_excess_finished_tasks_without_waiting(project: Path) -> None:
    async def main() -> None:
        store = await opened(project, max_finished=50, prune_interval_minutes=600)
        for _ in range(200):
            t = await store.add(new_task(store))
            await store.update(t.id, state="cancelled")
            if store._auto_prune is not None:
                await store._auto_prune  # deterministic: let the triggered prune finish
        # Pruning starts once the excess reaches 100 (10% or at least 100) over 50.
        assert store.counts()["cancelled"] < 150
        assert store.status()["pruned"] >= 50
        await store.stop()

    run(main())


def test_fast_stop_skips_the_final_rewrite_and_loses_nothing(project: Path) -> None:
    async def main() -> list[str]:
        store = await opened(project)
        ids = [(await store.add(new_task(store))).id for _ in range(20)]
        await store.stop(fast=True)
        assert not Paths(project).tasks_file.exists()  # never compacted
        return ids

    ids = run(main())

    async def again() -> None:
        store = await opened(project)
        assert [t.id for t in store.queued()] == ids
        assert store.recovery["replayed"] == 20
        await store.stop()

    run(again())
    assert [r["id"] for r in snapshot(project)["tasks"]] == ids


def test_a_cancelled_rewrite_never_overtakes_the_next_one(project: Path) -> None:
    async def main() -> None:
        store = await opened(project)
        await asyncio.gather(*(store.add(new_task(store, prompt=None)) for _ in range(3000)))
        first = asyncio.create_task(store.compact())
        deadline = time.monotonic() + 10
        while store.storelog.writing is None and time.monotonic() < deadline:
            await asyncio.wait({first}, timeout=0.005)
        assert store.storelog.writing is not None, "the first rewrite never started"
        first.cancel()  # its thread goes on writing tasks.json
        late = await store.add(new_task(store))
        await store.compact()  # waits for that thread, then writes the newer state
        doc = snapshot(project)
        assert len(doc["tasks"]) == 3001 and doc["tasks"][-1]["id"] == late.id
        await store.stop()

    run(main())


def test_any_json_string_round_trips_and_bad_values_store_nothing(project: Path) -> None:
    # JSON may carry lone surrogates ("\ud800"); UTF-8 cannot: they are kept escaped.
    odd = "caf\u00e9 \U0001f600 \ud800 end"

    async def main() -> str:
        store = await opened(project)
        t = await store.add(new_task(store, metadata={"k": odd, "\udc80": 1}))
        await store.update(t.id, error=odd)
        with pytest.raises(TypeError):
            await store.add(new_task(store, metadata={"path": Path("/x")}))
        with pytest.raises(TypeError):
            await store.update(t.id, metadata={"path": Path("/x")})
        assert len(store) == 1 and store.get(t.id).metadata == {"k": odd, "\udc80": 1}
        await crash(store)
        return t.id

    async def crash(store: TaskStore) -> None:
        await store.storelog.journal.close()

    task_id = run(main())

    async def reopen() -> None:
        store = await opened(project)  # from the journal
        assert store.get(task_id).error == odd
        await store.stop()  # rewrites tasks.json
        store = await opened(project)  # from tasks.json
        assert store.recovery["snapshot"] == "ok"
        assert store.get(task_id).metadata == {"k": odd, "\udc80": 1}
        assert store.get(task_id).error == odd
        await store.stop()

    run(reopen())


FIXTURES = Path(__file__).parent / "fixtures"


def test_state_files_of_version_0_1_still_load(project: Path) -> None:
    """Before the executor seam, a task kept pid, pgid and proc_create_time as fields of
    its own; a snapshot and journal written then (saved by the 0.1 code, kept as they
    were) load with those facts as the task's `runner`."""
    daemon_dir = Paths(project).daemon_dir
    daemon_dir.mkdir(parents=True)
    for name in ("tasks.json", "tasks.journal", "tasks.ids"):
        (daemon_dir / name).write_bytes((FIXTURES / "v0.1" / name).read_bytes())

    async def main() -> None:
        store = TaskStore(Paths(project), TasksSection(), None)
        await store.start()
        done, queued, running = store.list(limit=10)[0][::-1]
        assert (done.state, done.runner) == (
            TaskState.COMPLETED,
            {"pid": 4242, "pgid": 4242, "create_time": 1700000000.5},
        )
        assert (queued.state, queued.runner, queued.agent) == (TaskState.QUEUED, None, "claude")
        assert (running.state, running.command) == (TaskState.RUNNING, ["sleep", "100"])
        assert running.runner == {"pid": 999999, "pgid": 999999, "create_time": 1700000001.25}
        assert "pid" not in done.to_dict() and done.to_dict()["runner"]["pid"] == 4242
        await store.stop()

    run(main())
