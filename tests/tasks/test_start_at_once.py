"""A task submitted while a slot is free starts at once (issue 9): its queued and running
states are one journal line, so one fsync stands before its spawn instead of two.

What must hold: the submitter is still told of the task as queued, both task.queued
and task.started are published, recovery gets the same facts as from two lines (a task
found running after a crash may have started: it is stopped, counted and handled per
its on_interrupt), and a kill -9 right after the acknowledgement loses nothing.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiwgd.config import Paths
from aiwgd.config.tasks import TasksSection
from aiwgd.events.router import EventRouter
from aiwgd.tasks.model import Task, TaskState
from aiwgd.tasks.runner_record import RECORD_AFTER_S
from aiwgd.tasks.store.store import TaskStore
from tests.conftest import DaemonFactory
from tests.taskhelp import assert_all_gone, pids_in, prog, submit, task_config, wait_terminal
from tests.utils import DaemonProc, wait_for


def journal(paths: Paths, task_id: str) -> list[dict[str, Any]]:
    """The journal entries about one task, oldest first."""
    out = []
    for line in paths.tasks_journal.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("id") == task_id or entry.get("task", {}).get("id") == task_id:
            out.append(entry)
    return out


def states(paths: Paths, task_id: str) -> list[tuple[str, str | None]]:
    """(op, state recorded or None) of each journal entry about one task."""
    return [(e["op"], (e.get("task") or e["fields"]).get("state")) for e in journal(paths, task_id)]


def test_the_store_keeps_one_line_for_queued_and_running(project: Path) -> None:
    async def main() -> None:
        router = EventRouter()
        store = TaskStore(Paths(project), TasksSection(), router)
        await store.start()
        told = await store.add(Task(id=store.new_id(), command=["true"]), start=True)
        assert told.state is TaskState.QUEUED and told.started_at is None
        held = store.get(told.id)
        assert held is not None and held.state is TaskState.RUNNING and held.started_at
        assert held.log_path == told.log_path
        events = [(e.type, e.data["state"], e.data["previous"]) for e in router.history]
        assert events == [
            ("task.queued", "queued", None),
            ("task.started", "running", "queued"),
        ]
        [entry] = journal(Paths(project), told.id)
        assert entry["op"] == "add" and entry["task"]["state"] == "running"
        await store.stop(fast=True)
        again = TaskStore(Paths(project), TasksSection(), None)
        await again.start()
        assert [t.id for t in again.found_running()] == [told.id]
        assert again.recovery["found_running"] == 1
        await again.stop()

    asyncio.run(main())


def test_only_a_task_that_finds_a_free_slot_starts_at_once(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(cap=1))
    gate = project / "gate"
    first = submit(d, prog("--gate", str(gate)))
    second = submit(d, prog("--say", "later"))  # the one slot is taken: queued
    assert first["state"] == second["state"] == "queued"  # what the submitter is told
    assert first["started_at"] is None and first["log_path"]
    wait_for(lambda: d.call("task.get", id=first["id"])["runner"], 10, "the first to run")
    # Its runner is journalled once it has run a moment (aiwgd.tasks.runner_record).
    wait_for(
        lambda: states(d.paths, first["id"]) == [("add", "running"), ("set", None)],
        10,
        "the first task's runner in the journal",
    )
    gate.touch()
    assert wait_terminal(d, second["id"])["state"] == "completed"
    # Two lines: it waited for its slot.
    assert states(d.paths, second["id"])[:2] == [("add", "queued"), ("set", "running")]
    for task in (first, second):
        types = [
            e["type"]
            for e in d.call("events.list", type="task.*")["events"]
            if e["data"]["id"] == task["id"]
        ]
        assert types == ["task.queued", "task.started", "task.completed"]
    assert d.call("task.stats")["totals"]["submitted"] == 2


def test_a_short_task_is_two_journal_lines_and_shows_where_it_runs(
    start_daemon: DaemonFactory, project: Path
) -> None:
    """A task that ends within the runner record's delay never journals its runner
    (one line and fsync fewer a task); while it runs, task.get still shows it."""
    d = start_daemon(task_config(cap=1))
    gate = project / "gate"
    task = submit(d, prog("--gate", str(gate)))
    shown = wait_for(lambda: d.call("task.get", id=task["id"])["runner"], 10, "its runner")
    assert shown["pid"] > 0 and shown["pgid"] == shown["pid"]
    quick = submit(d, ["true"])
    gate.touch()
    done = wait_terminal(d, quick["id"])
    assert done["state"] == "completed" and done["runner"] is None
    lines = states(d.paths, quick["id"])
    if done["finished_at"] - done["started_at"] < RECORD_AFTER_S * 0.8:  # not on a stalled box
        assert lines == [("add", "queued"), ("set", "running"), ("set", "completed")]


def test_kill9_right_after_a_submit_that_started_at_once(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(cap=2))
    gate, runs_a, runs_b = project / "gate", project / "a.runs", project / "b.runs"
    # Both find a free slot; the daemon dies the moment the second is acknowledged,
    # whether or not either program has started by then.
    a = submit(d, prog("--pidfile", str(runs_a), "--gate", str(gate)), max_retries=1)
    b = submit(d, prog("--pidfile", str(runs_b), "--gate", str(gate)), on_interrupt="fail")
    d.kill9()
    for task in (a, b):
        assert states(d.paths, task["id"])[0] == ("add", "running")

    d2: DaemonProc = start_daemon(root=project, write=False)
    rec = d2.call("daemon.status")["subsystems"]["store"]["recovery"]
    assert rec["found_running"] == 2

    def second_attempt() -> int | None:
        # a is requeued per its policy, as a retry: attempt 2 runs (and writes its pid).
        t = d2.call("task.get", id=a["id"])
        pid = (t["runner"] or {}).get("pid")
        return pid if t["attempt"] == 2 and pid in pids_in(runs_a) else None

    current = wait_for(second_attempt, 10, "a's second attempt to run")
    # Whatever the killed daemon had started is gone: only a's second attempt runs.
    assert_all_gone([p for p in pids_in(runs_a) + pids_in(runs_b) if p != current])
    got_b = d2.call("task.get", id=b["id"])
    assert got_b["state"] == "failed" and got_b["attempt"] == 1
    assert "interrupted" in got_b["error"] and "on_interrupt is fail" in got_b["error"]
    gate.touch()
    done_a = wait_terminal(d2, a["id"])
    assert done_a["state"] == "completed" and done_a["attempt"] == 2
    assert_all_gone(pids_in(runs_a) + pids_in(runs_b))
