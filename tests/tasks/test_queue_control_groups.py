"""Issue 11, queue control: task groups (tasks.groups) with their own caps, under the
global one; task.stats per group; a reload changing a cap applies at once.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DaemonFactory
from tests.taskhelp import max_concurrency, prog, records, submit, task_config, wait_terminal
from tests.utils import BASE_CONFIG, deep_merge, wait_for, write_config


def groups_config(one: int, two: int, cap: int = 4) -> dict[str, object]:
    return task_config(
        cap=cap, tasks={"groups": {"one": {"max_parallel": one}, "two": {"max_parallel": two}}}
    )


def test_each_group_keeps_its_own_cap(start_daemon: DaemonFactory, project: Path) -> None:
    d = start_daemon(config=groups_config(1, 2))
    rec_one, rec_two = project / "one.rec", project / "two.rec"
    ids = [
        submit(d, prog("--record", str(rec_one), f"a{i}", "--sleep", "0.3"), group="one")["id"]
        for i in range(3)
    ]
    ids += [
        submit(d, prog("--record", str(rec_two), f"b{i}", "--sleep", "0.3"), group="two")["id"]
        for i in range(4)
    ]
    for task_id in ids:
        assert wait_terminal(d, task_id)["state"] == "completed"
    assert len(records(rec_one)) == 6 and len(records(rec_two)) == 8
    assert max_concurrency(records(rec_one)) == 1
    assert max_concurrency(records(rec_two)) == 2
    groups = d.call("task.stats")["groups"]
    assert groups["one"] == {
        "running": 0,
        "queued": 0,
        "max_parallel": 1,
        "paused": False,
        "max_active": 1,
    }
    assert groups["two"]["max_active"] == 2 and groups["two"]["max_parallel"] == 2


def test_a_reload_raising_a_cap_starts_waiting_tasks_at_once(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(config=groups_config(1, 1))
    gate = project / "gate"
    ids = [submit(d, prog("--gate", str(gate)), group="one")["id"] for _ in range(3)]

    def group_one() -> dict[str, object]:
        stats: dict[str, dict[str, object]] = d.call("task.stats")["groups"]
        return stats["one"]

    wait_for(lambda: group_one()["running"] == 1, 10, "one task of group one running")
    assert group_one()["queued"] == 2
    assert d.call("task.stats")["running"] == 1  # the global cap (4) is not what holds them
    write_config(project, deep_merge(BASE_CONFIG, groups_config(3, 1)))
    d.call("daemon.reload")
    wait_for(lambda: group_one()["running"] == 3, 10, "all three running after the reload")
    assert group_one()["max_parallel"] == 3
    gate.touch()
    for task_id in ids:
        assert wait_terminal(d, task_id)["state"] == "completed"


def test_tasks_held_by_their_group_keep_their_place_in_line(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(config=groups_config(1, 1))
    gate, rec = project / "gate", project / "order.rec"
    first = submit(d, prog("--gate", str(gate)), group="one")
    wait_for(lambda: d.call("task.get", id=first["id"])["state"] == "running", 10, "first runs")
    names = [("low", "low"), ("normal-1", "normal"), ("high", "high"), ("normal-2", "normal")]
    ids = [
        submit(d, prog("--record", str(rec), name), group="one", priority=prio)["id"]
        for name, prio in names
    ]
    gate.touch()
    for task_id in ids:
        assert wait_terminal(d, task_id)["state"] == "completed"
    started = [r[1] for r in sorted(records(rec), key=lambda r: r[2]) if r[0] == "start"]
    assert started == ["high", "normal-1", "normal-2", "low"]
