"""The day's agent spend: its UTC day arithmetic, and that it survives a kill -9 of the
daemon while an agent runs (the running estimate is on the task in the store)."""

from __future__ import annotations

import calendar
from pathlib import Path
from typing import Any

import pytest

from aiwgd.agents.costs import seconds_to_next_day, spent_on, sums, utc_day
from aiwgd.tasks.model import Task, TaskState
from tests.agents.test_budget import runaway
from tests.utils import BASE_CONFIG, alive, deep_merge, wait_for, write_config

NOON = calendar.timegm((2026, 3, 1, 12, 0, 0, 0, 0, 0))


def test_the_utc_day_and_the_time_to_the_next() -> None:
    assert utc_day(NOON) == "2026-03-01"
    assert seconds_to_next_day(NOON) == 12 * 3600
    assert seconds_to_next_day(NOON + 12 * 3600 - 0.5) == pytest.approx(0.5)
    assert seconds_to_next_day(NOON + 12 * 3600) == 86_400  # midnight: a whole day


def test_spend_counts_on_the_day_a_task_finished() -> None:
    def task(i: str, cost: float | None, finished: float | None, started: float) -> Task:
        return Task(
            id=i,
            state=TaskState.COMPLETED if finished else TaskState.RUNNING,
            prompt="p",
            cost_usd=cost,
            tokens=None if cost is None else {"output_tokens": 10},
            started_at=started,
            finished_at=finished,
        )

    tasks = [
        task("a", 0.5, NOON, NOON - 60),
        task("b", 0.25, NOON + 13 * 3600, NOON),  # finished the next UTC day
        task("c", None, NOON, NOON - 60),  # a command or a text agent: no cost
        task("d", 0.125, None, NOON),  # running: its start day
    ]
    assert spent_on(tasks, "2026-03-01") == 0.625
    assert spent_on(tasks, "2026-03-01", skip=frozenset({"d"})) == 0.5
    assert spent_on(tasks, "2026-03-02") == 0.25
    by = sums(tasks)
    assert list(by["days"]) == ["2026-03-01", "2026-03-02"]
    assert by["days"]["2026-03-01"]["tasks"] == 2 and by["agents"]["default"]["tasks"] == 3
    assert by["agents"]["default"]["output_tokens"] == 30


def test_the_spend_of_an_agent_running_when_the_daemon_was_killed_still_counts(
    start_daemon: Any, project: Path
) -> None:
    command, pidfile = runaway(project)
    agent: dict[str, Any] = {"command": command, "output": "stream-json"}
    d = start_daemon(config={"agent": agent})
    task = d.call("task.submit", prompt="go on", timeout_s=60)
    wait_for(lambda: d.call("task.get", id=task["id"])["cost_usd"], 10, "a recorded estimate")
    d.kill9()
    # The restarted daemon stops what the killed one left and records the attempt.
    budget = {"agent": {**agent, "budget": {"per_day_usd": 0.01}}}
    write_config(project, deep_merge(BASE_CONFIG, budget))
    d = start_daemon(write=False)
    wait_for(lambda: not alive(int(pidfile.read_text())), 10, "the agent stopped")
    cut = d.call("task.get", id=task["id"])
    assert cut["state"] in ("failed", "interrupted") and cut["cost_usd"] >= 0.015
    assert cut["session_id"] is not None
    assert d.call("task.stats")["costs"]["today"]["spent_usd"] >= 0.015
    held = d.call("task.submit", prompt="more")
    got = wait_for(
        lambda: (t := d.call("task.get", id=held["id"]))["queued_reason"] and t,
        10,
        "the new prompt held by the day's spend",
    )
    assert got["state"] == "queued"
