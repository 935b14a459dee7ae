"""task.get's queue_position: a queued task's place in line as the daemon's queue will
take them (priority, then arrival), what `aiwg task submit --wait` shows."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DaemonFactory
from tests.taskhelp import prog, submit, task_config, wait_terminal
from tests.utils import wait_for


def test_queued_tasks_show_their_place_in_line(start_daemon: DaemonFactory, project: Path) -> None:
    d = start_daemon(config=task_config(cap=1))
    gate = project / "gate"
    running = submit(d, prog("--gate", str(gate)))
    wait_for(lambda: d.call("task.get", id=running["id"])["state"] == "running", 10, "a start")
    early = submit(d, prog("--say", "early"))
    late = submit(d, prog("--say", "late"))
    urgent = submit(d, prog("--say", "urgent"), priority=5)
    later = submit(d, prog("--say", "later"), delay_s=3600)

    def place(task_id: str) -> object:
        return d.call("task.get", id=task_id).get("queue_position")

    assert place(urgent["id"]) == {"place": 1, "of": 3}
    assert place(early["id"]) == {"place": 2, "of": 3}
    assert place(late["id"]) == {"place": 3, "of": 3}
    assert place(later["id"]) is None  # not ready: its start_at is an hour away
    assert "queue_position" not in d.call("task.get", id=running["id"])
    d.call("task.cancel", id=early["id"])
    assert place(late["id"]) == {"place": 2, "of": 2}
    gate.touch()
    assert wait_terminal(d, late["id"])["state"] == "completed"
    assert "queue_position" not in d.call("task.get", id=late["id"])
