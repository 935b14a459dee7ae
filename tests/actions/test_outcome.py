"""The shared action verdict and the tracking of started tasks, in-process.

One event loop per test (`asyncio.run`); the router is real, with no files.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aiwgd.actions.outcome import StartedTasks, Verdict
from aiwgd.actions.runner import ActionError, ActionRunner, ActionTemplateError
from aiwgd.config.model import Action
from aiwgd.events.router import EventRouter
from aiwgd.tasks.model import TERMINAL_EVENTS

EVENT = {
    "id": "ev-1",
    "type": "file.modified",
    "source": "watcher",
    "time": 0.0,
    "data": {"path": "a.py"},
}


async def _submit(spec: dict[str, Any], source: str) -> dict[str, Any]:
    return {"id": "t-1", "state": "queued"}


def test_terminal_events_are_the_terminal_task_states() -> None:
    assert TERMINAL_EVENTS == (
        "task.completed",
        "task.failed",
        "task.timed_out",
        "task.cancelled",
        "task.dependency_failed",
    )


@pytest.mark.parametrize(
    ("action", "attempt", "verdict"),
    [
        (Action("log", message="saw {{data.path}}"), 1, Verdict.SUCCEEDED),
        (Action("log", message="saw {{data.missing}}"), 1, Verdict.HOPELESS),
        (Action("task", command=["true"]), 1, Verdict.RETRY),  # no supervisor: fails
        (Action("task", command=["true"]), 3, Verdict.RETRY),  # max_retries is 3
        (Action("task", command=["true"]), 4, Verdict.FAILED),
    ],
)
def test_attempt_verdicts(action: Action, attempt: int, verdict: Verdict) -> None:
    async def main() -> None:
        runner = ActionRunner(EventRouter())
        out = await runner.attempt(action, EVENT, {}, "rule", attempt)
        assert out.verdict is verdict
        assert out.final is (verdict is not Verdict.RETRY)
        if verdict in (Verdict.RETRY, Verdict.FAILED):
            with pytest.raises(ActionError):
                out.hand_back()  # the router retries or dead-letters it
        else:
            out.hand_back()  # nothing for the router to do
        if verdict is Verdict.HOPELESS:
            assert isinstance(out.error, ActionTemplateError)

    asyncio.run(main())


def test_attempt_task_id() -> None:
    async def main() -> None:
        runner = ActionRunner(EventRouter(), _submit)
        out = await runner.attempt(Action("task", prompt="p"), EVENT, {}, "rule", 1)
        assert (out.verdict, out.task_id, out.result["state"]) == (
            Verdict.SUCCEEDED,
            "t-1",
            "queued",
        )
        log = await runner.attempt(Action("log", message="m"), EVENT, {}, "rule", 1)
        assert log.task_id is None

    asyncio.run(main())


def schedule_tracker(
    router: EventRouter,
) -> tuple[StartedTasks[str], list[tuple[str, str, str]]]:
    """A started tracker for source "schedule" and the (owner, task, state) ends it told."""
    ended: list[tuple[str, str, str]] = []
    tasks: StartedTasks[str] = StartedTasks(
        router, "test:tasks", "schedule", lambda o, t, s: ended.append((o, t, s))
    )
    tasks.start()
    return tasks, ended


def test_started_tasks_report_each_end_once() -> None:
    async def main() -> None:
        router = EventRouter()
        tasks, ended = schedule_tracker(router)
        assert tasks.track("t-1", "owner-1") is None
        router.publish("task.started", {"id": "t-1", "source": "schedule"}, "tasks")
        router.publish("task.timed_out", {"id": "t-1", "source": "schedule"}, "tasks")
        router.publish("task.failed", {"id": "t-1", "source": "schedule"}, "tasks")
        # Ended before anyone tracked it: remembered for its own source only.
        router.publish("task.completed", {"id": "t-2", "source": "schedule"}, "tasks")
        router.publish("task.completed", {"id": "t-3", "source": "rule"}, "tasks")
        for _ in range(20):
            await asyncio.sleep(0)
        assert ended == [("owner-1", "t-1", "timed_out")]
        assert tasks.track("t-2", "owner-2") == "completed"
        assert tasks.track("t-3", "owner-3") is None
        tasks.stop()

    asyncio.run(main())


def test_started_tasks_limit_forgets_the_oldest() -> None:
    async def main() -> None:
        router = EventRouter()
        tasks: StartedTasks[int] = StartedTasks(router, "t", "rule", lambda *a: None, limit=2)
        for i in range(3):
            tasks.track(f"t-{i}", i)
        assert list(tasks.owners) == ["t-1", "t-2"]

    asyncio.run(main())


def test_an_idle_tracker_is_not_woken_by_other_tasks() -> None:
    """Every task publishes a terminal event; a tracker queues only the tasks it follows
    or that come from its own source (which it may be asked about later)."""

    async def main() -> None:
        router = EventRouter()
        tasks, ended = schedule_tracker(router)
        for i in range(100):
            router.publish("task.completed", {"id": f"cli-{i}", "source": "rpc"}, "tasks")
        sub = router.find("test:tasks")
        assert sub is not None
        for _ in range(5):
            await asyncio.sleep(0)
        assert (sub.status()["filtered"], sub.status()["delivered"]) == (100, 0)
        assert sub.queue.qsize() == 0
        # A tracked task is heard whatever its source; its own source's always are.
        assert tasks.track("t-1", "owner-1") is None
        router.publish("task.failed", {"id": "t-1", "source": "rpc"}, "tasks")
        router.publish("task.completed", {"id": "t-2", "source": "schedule"}, "tasks")
        for _ in range(20):
            await asyncio.sleep(0)
        assert ended == [("owner-1", "t-1", "failed")]
        assert (sub.status()["filtered"], sub.status()["delivered"]) == (100, 2)
        assert tasks.track("t-2", "owner-2") == "completed"
        tasks.stop()

    asyncio.run(main())
