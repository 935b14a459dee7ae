"""What a new trigger does while earlier runs of the same rule or job are still going.

Shared by the automation engine (one gate per rule) and the scheduler (one per job).
A run starts when its action is handed over and lasts until the action finishes, or
for a task action until the task ends. The owner tells the gate when a run begins
(`begin`), when its task is known (`begin` again) and when it ends (`end`); the gate
answers what a new trigger does (`admit`) and which waiting one starts next.

Policies (the `overlap` key of a rule or a job):

- `allow`: every trigger starts a run at once, whatever is going;
- `skip`: a trigger that comes while a run is going is dropped;
- `queue`: it waits and starts once no run is going. At most `limit` wait; when the
  queue is full the oldest waiting trigger gives way to the newest, so what finally
  runs is always the latest state of the world (a rule keeps one: `limit=1`);
- `replace`: it waits like `queue`, and the owner stops the running runs (cancels
  their tasks) so it starts as soon as they are gone. The gate only says so
  (`Admission.REPLACE`): stopping a run is the owner's business.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from typing import Generic, TypeVar

__all__ = ["Admission", "RunGate"]

Item = TypeVar("Item")


class Admission(StrEnum):
    START = "start"  # start it now
    SKIP = "skip"  # drop it: a run is going and the policy is skip
    WAIT = "wait"  # it waits for the running runs to end (queue)
    REPLACE = "replace"  # it waits, and the running runs should be stopped


class RunGate(Generic[Item]):
    """The runs of one rule or job that are going, and the triggers waiting for them."""

    def __init__(self, limit: int = 1) -> None:
        self.limit = max(1, limit)
        self.running: dict[str, str] = {}  # run id -> task id ("" until it has one)
        self.waiting: deque[Item] = deque()

    @property
    def busy(self) -> bool:
        return bool(self.running)

    def labels(self) -> list[str]:
        """What is running, for people: each run's task id, or its run id until it has one."""
        return [task_id or run_id for run_id, task_id in self.running.items()]

    def admit(self, policy: str, item: Item) -> tuple[Admission, Item | None]:
        """What `item` does under `policy`, and the waiting item it pushed out (if any).

        A WAIT or REPLACE item is kept (`waiting`) until `end()` hands it back.
        """
        if not self.running or policy == "allow":
            return Admission.START, None
        if policy == "skip":
            return Admission.SKIP, None
        dropped = self.waiting.popleft() if len(self.waiting) >= self.limit else None
        self.waiting.append(item)
        return (Admission.REPLACE if policy == "replace" else Admission.WAIT), dropped

    def begin(self, run_id: str, task_id: str = "") -> None:
        """Record a run as going (again, with its task id once the action started one)."""
        self.running[run_id] = task_id

    def end(self, run_id: str) -> Item | None:
        """Forget a run; the waiting item that may start now that none is going, or None."""
        self.running.pop(run_id, None)
        if self.waiting and not self.running:
            return self.waiting.popleft()
        return None

    def drain(self) -> list[Item]:
        """Take every waiting item (the owner is going away or the rule was removed)."""
        items = list(self.waiting)
        self.waiting.clear()
        return items
