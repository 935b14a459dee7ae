"""Issue 11, queue control: `after` dependencies and delayed starts (run_at / delay_s).

Real daemon, real processes: the tasks are tests/scripts/taskprog.py, held with
--gate FILE where a test needs to decide when they end.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aiwgd.client import RpcError
from tests.conftest import DaemonFactory
from tests.taskhelp import prog, submit, task_config
from tests.utils import DaemonProc, Subscriber, wait_for

ENDS = ("completed", "failed", "timed_out", "cancelled", "dependency_failed")


def wait_terminal(d: DaemonProc, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """The task once it ended (dependency_failed included: taskhelp's list predates it)."""

    def done() -> dict[str, Any] | None:
        task: dict[str, Any] = d.call("task.wait", id=task_id, timeout_s=1, _timeout=5)
        return task if task["state"] in ENDS else None

    result: dict[str, Any] = wait_for(done, timeout, f"task {task_id} to end")
    return result


def test_after_starts_only_once_its_dependency_completed(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(config=task_config(cap=4))
    gate = project / "gate"
    first = submit(d, prog("--gate", str(gate)))
    second = submit(d, prog("--say", "two"), after=[first["id"]])
    third = submit(d, prog("--say", "three"), after=[second["id"], first["id"]])
    wait_for(lambda: d.call("task.get", id=first["id"])["state"] == "running", 10, "first runs")
    # Slots are free, yet neither dependent starts while `first` runs.
    assert d.call("task.get", id=second["id"])["state"] == "queued"
    assert d.call("task.get", id=third["id"])["state"] == "queued"
    gate.touch()
    one = wait_terminal(d, first["id"])
    two = wait_terminal(d, second["id"])
    three = wait_terminal(d, third["id"])
    assert [one["state"], two["state"], three["state"]] == ["completed"] * 3
    assert two["after"] == [first["id"]]
    assert two["started_at"] >= one["finished_at"]
    assert three["started_at"] >= two["finished_at"]


def test_a_failed_dependency_fails_the_chain_without_running_it(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(config=task_config(cap=4))
    ran = project / "ran"
    events = Subscriber(d, ["task.dependency_failed"])
    first = submit(d, prog("--exit", "3"))
    second = submit(d, prog("--pidfile", str(ran)), after=[first["id"]])
    third = submit(d, prog("--pidfile", str(ran)), after=[second["id"]])
    assert wait_terminal(d, first["id"])["state"] == "failed"
    two = wait_terminal(d, second["id"])
    three = wait_terminal(d, third["id"])
    assert two["state"] == three["state"] == "dependency_failed"
    assert first["id"] in two["error"] and "failed" in two["error"]
    assert second["id"] in three["error"]
    assert two["started_at"] is None and not ran.exists()
    seen = {events.next()["data"]["id"] for _ in range(2)}
    assert seen == {second["id"], third["id"]}
    events.close()
    # A cancelled dependency counts as not completed too.
    gate = project / "never"
    held = submit(d, prog("--gate", str(gate)))
    waiting = submit(d, prog("--pidfile", str(ran)), after=[held["id"]])
    d.call("task.cancel", id=held["id"])
    assert wait_terminal(d, waiting["id"])["state"] == "dependency_failed"
    stats = d.call("task.stats")
    assert stats["counts"]["dependency_failed"] == 3


def test_after_unknown_or_bad_is_refused_and_nothing_is_stored(
    start_daemon: DaemonFactory,
) -> None:
    d = start_daemon(config=task_config())
    before = d.call("task.list")["total"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"after": ["nosuchtask"]}, 'after[0]: no task with id "nosuchtask"'),
        ({"delay_s": -1}, "delay_s"),
        ({"run_at": "tomorrow at noon"}, "run_at:"),
        ({"run_at": "2030-01-01T00:00", "delay_s": 1}, "run_at, delay_s"),
        ({"group": "nogroup"}, 'group: unknown group "nogroup"'),
        ({"name": "two\nlines"}, "name"),
    ]
    for params, where in cases:
        with pytest.raises(RpcError) as info:
            submit(d, prog("--say", "x"), **params)
        assert info.value.code == -32602, params
        assert where in info.value.message, (params, info.value.message)
    assert d.call("task.list")["total"] == before


def test_delay_s_waits_and_shows_its_start_time(start_daemon: DaemonFactory) -> None:
    d = start_daemon(config=task_config())
    submitted = time.time()
    task = submit(d, prog("--say", "later"), delay_s=0.5)
    shown = d.call("task.get", id=task["id"])
    assert shown["state"] == "queued"
    assert submitted + 0.4 <= shown["start_at"] <= time.time() + 0.6
    listed = d.call("task.list")["tasks"][0]
    assert listed["id"] == task["id"] and listed["start_at"] == shown["start_at"]
    done = wait_terminal(d, task["id"])
    assert done["state"] == "completed"
    assert done["started_at"] >= shown["start_at"]


def test_run_at_local_time_survives_a_restart(start_daemon: DaemonFactory, project: Path) -> None:
    cfg = task_config()
    d = start_daemon(config=cfg)
    # Two seconds ahead, as a person writes it: local time, no zone.
    when = datetime.now() + timedelta(seconds=2)
    task = submit(d, prog("--say", "at"), run_at=when.isoformat(timespec="milliseconds"))
    assert abs(task["start_at"] - when.timestamp()) < 0.01
    d.stop()
    assert time.time() < task["start_at"], "the restart took too long for this test"
    d = start_daemon(config=cfg)
    assert d.call("task.get", id=task["id"])["state"] == "queued"
    done = wait_terminal(d, task["id"])
    assert done["state"] == "completed"
    assert done["started_at"] >= task["start_at"]


def test_a_waiting_dependent_is_re_evaluated_after_a_restart(
    start_daemon: DaemonFactory, project: Path
) -> None:
    cfg = task_config()
    d = start_daemon(config=cfg)
    first = submit(d, prog("--say", "one"), delay_s=60)  # held well past the restart
    second = submit(d, prog("--say", "two"), after=[first["id"]])
    d.stop()
    d = start_daemon(config=cfg)
    assert d.call("task.get", id=second["id"])["state"] == "queued"
    d.call("task.cancel", id=first["id"])
    done = wait_terminal(d, second["id"])
    assert done["state"] == "dependency_failed"
