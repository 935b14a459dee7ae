"""What one attempt of an action came to, and the tasks actions started, until they end.

Shared by every user of `ActionRunner` that runs actions from a router subscription
with retries on (the automation engine's rule executors, the scheduler's job executors):

- `ActionRunner.attempt()` runs the action once and returns an `Outcome` whose `Verdict`
  says what the failure means: a template error is hopeless (retrying the same event
  cannot make a missing field appear, so no retry and no dead letter); any other
  `ActionError` is retried while the attempt number is within `events.max_retries`,
  and is final after that. The caller records the outcome its own way, then calls
  `Outcome.hand_back()`, which re-raises the failure so the router retries the event
  or dead-letters it after the last attempt.
- `StartedTasks` follows the tasks that task actions submitted until a terminal
  `task.*` event arrives, and tells the owner how each one ended.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from aiwgd.tasks.model import TERMINAL_EVENTS

if TYPE_CHECKING:
    from aiwgd.actions.runner import ActionError
    from aiwgd.events.model import Event
    from aiwgd.events.router import EventRouter, Subscription

__all__ = ["Outcome", "StartedTasks", "Verdict"]

Owner = TypeVar("Owner")

# Tasks that ended before anyone tracked them, remembered for a late track() call.
EARLY_ENDS_KEPT = 1000


class Verdict(StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"  # failed; the router delivers the event again after a backoff
    FAILED = "failed"  # failed on the last attempt; the router dead-letters the event
    HOPELESS = "hopeless"  # a template error: no retry, no dead letter


@dataclass(frozen=True)
class Outcome:
    """One attempt of an action: its verdict, and its result or its error."""

    verdict: Verdict
    result: dict[str, Any] = field(default_factory=dict)
    error: ActionError | None = None

    @property
    def final(self) -> bool:
        """True unless the router will deliver the event again."""
        return self.verdict is not Verdict.RETRY

    @property
    def task_id(self) -> str | None:
        """The id of the task the action submitted, if it submitted one."""
        task_id = self.result.get("task_id")
        return str(task_id) if task_id else None

    def hand_back(self) -> None:
        """Re-raise the failure for the router to retry or dead-letter; else nothing."""
        if self.error is not None and self.verdict is not Verdict.HOPELESS:
            raise self.error


class StartedTasks(Generic[Owner]):
    """Tasks started by actions, each with its owner, until a terminal task.* event.

    One router subscription (`name`, no retries) hears the terminal task events of the
    tasks it follows or that come from `source` (the rest are filtered at publish, so an
    idle tracker costs nothing per task); when a tracked task ends,
    `on_end(owner, task_id, state)` is called once. A task from
    `source` that ends before it is tracked is remembered (the newest EARLY_ENDS_KEPT),
    so `track()` can report its end at once. With `limit`, only the newest `limit`
    tasks are followed; older ones are forgotten without a call.
    """

    def __init__(
        self,
        router: EventRouter,
        name: str,
        source: str,
        on_end: Callable[[Owner, str, str], None],
        limit: int | None = None,
    ) -> None:
        self.router = router
        self.name = name
        self.source = source
        self.on_end = on_end
        self.limit = limit
        self.owners: OrderedDict[str, Owner] = OrderedDict()  # task id -> owner
        self.ended_early: OrderedDict[str, str] = OrderedDict()  # task id -> end state
        self._sub: Subscription | None = None

    def start(self) -> None:
        self._sub = self.router.subscribe(
            list(TERMINAL_EVENTS), self._task_ended, self.name, retries=False, accept=self._wants
        )

    def stop(self) -> None:
        if self._sub is not None:
            self.router.unsubscribe(self._sub)
            self._sub = None

    def track(self, task_id: str, owner: Owner) -> str | None:
        """Follow `task_id` for `owner`: None, or the state it already ended in."""
        ended = self.ended_early.pop(task_id, None)
        if ended is not None:
            return ended
        self.owners[task_id] = owner
        if self.limit is not None:
            while len(self.owners) > self.limit:
                self.owners.popitem(last=False)
        return None

    def _wants(self, event: Event) -> bool:
        """Asked at publish: only a tracked task, or one from `source`, is queued.

        Every task in the daemon publishes a terminal event; one this tracker neither
        follows nor could follow later (not from `source`) would only be dropped by
        _task_ended, after a queue put and a wake of the subscriber's task.
        """
        data = event.data
        return data.get("source") == self.source or str(data.get("id", "")) in self.owners

    async def _task_ended(self, event: Event) -> None:
        task_id = str(event.data.get("id", ""))
        state = event.type.split(".", 1)[1]
        owner = self.owners.pop(task_id, None)
        if owner is not None:
            self.on_end(owner, task_id, state)
        elif event.data.get("source") == self.source:
            # The task can end before the action's caller has recorded its id.
            self.ended_early[task_id] = state
            while len(self.ended_early) > EARLY_ENDS_KEPT:
                self.ended_early.popitem(last=False)
