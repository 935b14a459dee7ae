"""Crash safety of the task store: SIGKILL mid-storm, torn and damaged files, id reuse.

A real writer process is killed with SIGKILL at random moments while 8 coroutines add
and update tasks (with compaction running in between); every write it acknowledged
must be on disk afterwards. Damaged files are made by damaging real store files.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from aiwgd.config import Paths
from aiwgd.config.tasks import TasksSection
from aiwgd.tasks.model import Task, TaskState
from aiwgd.tasks.store.store import TaskStore
from tests.utils import DaemonProc, env_for_tests, wait_for


async def opened(root: Path, **cfg: Any) -> TaskStore:
    store = TaskStore(Paths(root), TasksSection(**cfg))
    await store.start()
    return store


async def crash(store: TaskStore) -> None:
    """Leave the files as a crash would: no final compaction, nothing more written."""
    if store._pruner is not None:
        store._pruner.cancel()
    if store.storelog.compacting is not None:
        await store.storelog.compacting
    await store.storelog.journal.close()


async def fill(root: Path, n: int, **cfg: Any) -> list[Task]:
    store = await opened(root, **cfg)
    made = [await store.add(Task(id=store.new_id(), prompt=f"p{i}")) for i in range(n)]
    await crash(store)
    return made


def load(root: Path, **cfg: Any) -> TaskStore:
    async def main() -> TaskStore:
        store = await opened(root, **cfg)
        await store.stop()
        return store

    return asyncio.run(main())


def damaged_files(root: Path, name: str) -> list[Path]:
    return sorted(Paths(root).daemon_dir.glob(f"{name}.damaged-*"))


# ---- SIGKILL in the middle of a storm of writes ----------------------------------------
def run_writer_until_killed(root: Path, kill_after: int) -> tuple[dict[str, str], set[str]]:
    """Start the writer, SIGKILL it after `kill_after` acknowledged writes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.store_writer", str(root), "37"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for_tests(),
    )
    assert proc.stdout is not None
    added: dict[str, str] = {}
    running: set[str] = set()

    def take(line: str) -> None:
        parts = line.split()
        if parts and parts[0] == "A":
            added[parts[1]] = parts[2]
        elif parts and parts[0] == "R":
            running.add(parts[1])

    try:
        acked = 0
        while acked < kill_after:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"writer exited early: {proc.stderr.read()}")  # type: ignore[union-attr]
            take(line)
            acked += line[0] in "AR"
        proc.kill()
    finally:
        proc.kill()
        rest, _ = proc.communicate(timeout=10)
    # What the writer printed before it died was acknowledged too (whole lines only).
    for line in rest.splitlines(keepends=True):
        if line.endswith("\n"):
            take(line)
    assert proc.returncode == -9
    return added, running


def test_every_acknowledged_write_survives_sigkill(project: Path) -> None:
    rng = random.Random()
    all_added: dict[str, str] = {}
    all_running: set[str] = set()
    for _ in range(4):
        added, running = run_writer_until_killed(project, rng.randint(30, 900))
        all_added.update(added)
        all_running |= running
        tasks_file = Paths(project).tasks_file
        if tasks_file.exists():  # replaced atomically: never half a file
            assert isinstance(json.loads(tasks_file.read_text())["tasks"], list)
        store = load(project, compact_every=37)
        assert store.recovery["snapshot"] in ("ok", "missing")
        for task_id, tag in all_added.items():
            task = store.get(task_id)
            assert task is not None, f"acknowledged task {task_id} lost"
            assert task.command == ["echo", tag]
            w, i, _ = tag.split("-", 2)
            assert task.metadata == {"w": int(w[1:]), "i": int(i)}
        for task_id in all_running:
            assert store.get(task_id).state is TaskState.RUNNING  # type: ignore[union-attr]
    assert not damaged_files(project, "tasks.json")
    assert not damaged_files(project, "tasks.journal")
    # After the clean stop of the last load, tasks.json holds everything.
    doc = json.loads(Paths(project).tasks_file.read_text())
    assert set(all_added) <= {r["id"] for r in doc["tasks"]}


# ---- torn and damaged files -------------------------------------------------------------
@pytest.mark.parametrize("tail", [b'{"seq": 9999, "op": "add", "ta', b"\x00\x00\x00\n"])
def test_torn_last_journal_line_is_skipped_and_cut(
    project: Path, tail: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    made = asyncio.run(fill(project, 5))
    journal = Paths(project).tasks_journal
    with journal.open("ab") as fh:
        fh.write(tail)

    async def main() -> Task:
        with caplog.at_level(logging.WARNING, logger="aiwgd.snapshot"):
            store = await opened(project)
        assert store.recovery["torn_bytes"] == len(tail)
        assert [t.id for t in store.list(limit=10)[0]] == [t.id for t in reversed(made)]
        # The torn bytes are cut, so the next append starts on a line of its own.
        late = await store.add(Task(id=store.new_id(), prompt="after the crash"))
        await crash(store)
        return late

    late = asyncio.run(main())
    assert "torn last journal line skipped" in caplog.text
    # A line cut short is a crash artifact; a whole line of garbage is damage: kept.
    copies = damaged_files(project, "tasks.journal")
    if tail.endswith(b"\n"):
        assert len(copies) == 1 and copies[0].read_bytes().endswith(tail)
    else:
        assert copies == []
    again = load(project)
    assert again.recovery["torn_bytes"] == 0 and again.get(late.id) is not None
    assert len(again) == 6


def test_damaged_journal_line_mid_file_is_reported_and_kept(project: Path) -> None:
    asyncio.run(fill(project, 3))
    journal = Paths(project).tasks_journal
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[1] = b'{"seq": 2, "op": "add", "task": {"id": "broken\n'
    journal.write_bytes(b"".join(lines))
    store = load(project)
    assert store.recovery["bad_journal_lines"] == [2]
    assert len(store) == 2
    copies = damaged_files(project, "tasks.journal")
    assert len(copies) == 1 and copies[0].read_bytes() == b"".join(lines)


def test_damaged_snapshot_is_moved_aside_salvaged_and_rewritten(project: Path) -> None:
    made = asyncio.run(fill(project, 40))
    load(project)  # a clean stop: everything is in tasks.json, the journal is empty
    tasks_file = Paths(project).tasks_file
    raw = tasks_file.read_bytes()
    cut = raw[: len(raw) * 6 // 10]  # a snapshot cut short by a disk fault
    tasks_file.write_bytes(cut)

    async def main() -> TaskStore:
        store = await opened(project)
        rec = store.recovery
        assert rec["snapshot"] == "damaged" and "not valid JSON" in rec["problem"]
        assert Path(rec["damaged_file"]).read_bytes() == cut
        whole = [t.id for t in made if f'"id":"{t.id}"'.encode() in cut]
        salvaged = sorted(t.id for t in store.list(limit=100)[0])
        # Every line still whole came back; at most the one cut in half is lost.
        assert len(whole) - 1 <= len(salvaged) <= len(whole)
        assert set(salvaged) <= set(whole)
        assert rec["salvaged_tasks"] == len(salvaged)
        assert store.new_id() > max(t.id for t in made)
        await store.stop()
        return store

    store = asyncio.run(main())
    doc = json.loads(tasks_file.read_text())
    assert len(doc["tasks"]) == len(store)
    assert damaged_files(project, "tasks.json") == [Path(store.recovery["damaged_file"])]


@pytest.mark.parametrize("lose", ["tasks.json", "tasks.json+tasks.ids"])
def test_ids_are_not_reused_after_the_store_is_lost(project: Path, lose: str) -> None:
    async def main() -> list[str]:
        store = await opened(project)
        # Ids minted while the clock was far ahead (or since set back): the clock
        # alone would hand them out again.
        store._ids.gen.last += 10**10
        ids = [(await store.add(Task(id=store.new_id(), prompt="x"))).id for _ in range(5)]
        await store.stop()
        return ids

    old_ids = asyncio.run(main())
    paths = Paths(project)
    # Damaged beyond salvage: not one record parses, only the ids are still legible.
    paths.tasks_file.write_bytes(paths.tasks_file.read_bytes().replace(b'"state":"', b'"state":'))
    paths.tasks_journal.unlink()
    if "tasks.ids" in lose:
        paths.tasks_ids.unlink()
    else:
        paths.tasks_file.write_bytes(b"\x00" * 100)  # not even the ids are legible

    async def after() -> tuple[TaskStore, list[str]]:
        store = await opened(project)
        return store, [(await store.add(Task(id=store.new_id(), prompt="y"))).id for _ in range(5)]

    store, new_ids = asyncio.run(after())
    assert store.recovery["snapshot"] == "damaged" and store.recovery["salvaged_tasks"] == 0
    assert store.recovery["id_file"] == ("missing" if "tasks.ids" in lose else "ok")
    assert min(new_ids) > max(old_ids)


# ---- through the real daemon ------------------------------------------------------------
def test_daemon_reports_a_damaged_snapshot_and_rewrites_it(
    project: Path, start_daemon: Any
) -> None:
    made = asyncio.run(fill(project, 10))
    Paths(project).tasks_file.write_text('{"version": 1, "seq": 0, "tasks": [\n{"id": "oops"')
    d: DaemonProc = start_daemon()
    status = d.call("daemon.status")
    rec = status["subsystems"]["store"]["recovery"]
    assert rec["snapshot"] == "damaged" and Path(rec["damaged_file"]).exists()
    assert rec["replayed"] == 10  # the journal still had every task
    assert status["subsystems"]["store"]["tasks"] == 10

    def rewritten() -> bool:
        doc = json.loads(Paths(project).tasks_file.read_text())
        return sorted(r["id"] for r in doc["tasks"]) == sorted(t.id for t in made)

    wait_for(rewritten, 10, "tasks.json to be rewritten from the recovered tasks")
    assert d.stop() == 0


def test_acknowledged_submits_survive_sigkill_of_the_daemon(
    project: Path, start_daemon: Any
) -> None:
    """Clients submit in parallel over RPC; the daemon is SIGKILLed mid-storm."""
    from aiwgd.client import Client, ClientError

    d: DaemonProc = start_daemon({"daemon": {"max_parallel_actions": 2}})
    acked: dict[str, list[str]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        try:
            with Client(project, timeout=10) as c:
                while not stop.is_set():
                    argv = ["true", f"c{n}-{i}"]
                    # A retry: the task running at the kill may run again (on_interrupt).
                    task = c.call(
                        "task.submit", command=argv, metadata={"n": n, "i": i}, max_retries=1
                    )
                    with lock:
                        acked[task["id"]] = argv
                    i += 1
        except (ClientError, OSError):
            pass  # the daemon died under us: expected

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        target = random.randint(50, 300)
        wait_for(lambda: len(acked) >= target, 30, f"{target} acknowledged submits")
        d.kill9()
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    with lock:
        acknowledged = dict(acked)

    again: DaemonProc = start_daemon(write=False)
    with again.client() as c:
        for task_id, argv in acknowledged.items():
            task = c.call("task.get", id=task_id)
            assert task["command"] == argv

        def all_terminal() -> bool:
            states = [c.call("task.get", id=i)["state"] for i in acknowledged]
            return all(s in ("completed", "failed", "cancelled", "timed_out") for s in states)

        wait_for(all_terminal, 60, "every acknowledged task to finish after the restart")
        done = [c.call("task.get", id=i) for i in acknowledged]
    assert all(t["state"] == "completed" and t["exit_code"] == 0 for t in done)
