"""What agents spend, watched while they run: sessions recorded, budgets enforced.

The local executor feeds a prompt task's stream-json output to a StreamJsonParser
whose `on_change` is `AgentBudget.watch(task, attempt)`; that records the agent's
session id on the task as soon as it is seen (so the session can be resumed even if
the agent is killed later) and checks the running cost against `agent.budget`:
- over `per_task_usd`, the attempt goes down the stop ladder (EndReason.BUDGET) and
  the task fails with "budget: $X over the per-task budget of $Y";
- once the UTC day's spend (finished tasks of the day, from the store, plus the
  running estimates) passes `per_day_usd`, a running agent is stopped the same way,
  and `hold()` keeps new prompt tasks queued with a `queued_reason` until the next
  UTC day or a reload that raises (or drops) the budget.
Each stop, and the day budget being reached, publishes `agent.budget_reached`.
When an attempt ends the supervisor takes the run's fields for the task's final
record from `finish()`, which also turns an agent's `is_error` result into a failure.

The day's spend is derived from stored tasks at start (`load()`) and again when the
UTC day changes, so it survives a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiwgd.agents.costs import DEFAULT_AGENT, seconds_to_next_day, spent_on, sums, utc_day
from aiwgd.agents.streamjson import AgentRun
from aiwgd.config import Config
from aiwgd.tasks.model import Task, TaskState
from aiwgd.tasks.store.store import TaskStore

__all__ = ["AgentBudget", "BudgetStoppable"]

log = logging.getLogger("aiwgd.agents")

Publish = Callable[[str, dict[str, Any], str], object]
EVENT = "agent.budget_reached"
TASK_ERROR = "budget: ${spent:.2f} over the per-task budget of ${budget:.2f}"
DAY_ERROR = "budget: ${spent:.2f} spent today, over the daily agent budget of ${budget:.2f}"
WAIT_REASON = (
    "daily agent budget of ${budget:.2f} spent; waits until tomorrow (UTC) or a raised budget"
)
MAX_ERROR_CHARS = 500  # an agent's error answer, shortened for the task's error
# A running agent's cost and tokens go on its task at most this often (task.get shows
# them, and a daemon killed mid-run still finds most of the day's spend in the store).
RECORD_EVERY_S = 5.0
# The answer kept on the task (every journal line and task.get carry it); a longer one
# is cut, its whole text stays in the task log.
MAX_RESULT_CHARS = 64 * 1024
CUT_NOTE = "\n… (cut: the whole answer is in the task log)"


class BudgetStoppable(Protocol):
    """What of a running attempt the budget needs (LocalAttempt)."""

    def stop_for_budget(self, detail: str) -> None: ...

    def agent_run(self) -> AgentRun | None: ...


@dataclass
class _Live:
    task_id: str
    agent: str
    attempt: BudgetStoppable
    cost: float = 0.0
    session: str | None = None
    stopped: bool = False
    recorded_at: float = -RECORD_EVERY_S  # monotonic


def shorten(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AgentBudget:
    def __init__(self, config: Config, store: TaskStore, publish: Publish) -> None:
        self.cfg = config.agent
        self._store = store
        self._publish = publish
        self._live: dict[str, _Live] = {}
        self._day = utc_day(time.time())
        self._finished = 0.0  # cost of the tasks that finished on self._day
        self._told: tuple[str, float] | None = None  # (day, budget) announced reached
        self._parked: dict[str, int] = {}  # held prompt tasks: id -> priority
        self._timer: asyncio.TimerHandle | None = None
        self._requeue: Callable[[str, int], None] | None = None
        self._pump: Callable[[], None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._stopped: set[str] = set()  # tasks whose last attempt a budget stopped

    # ---- wiring ----------------------------------------------------------------------
    def bind(self, requeue: Callable[[str, int], None], pump: Callable[[], None]) -> None:
        """The supervisor's queue: where held tasks go back when they may start."""
        self._requeue, self._pump = requeue, pump

    def load(self) -> None:
        """The day's spend from the stored tasks (at start: the daemon may have
        restarted mid-day)."""
        self._day = utc_day(time.time())
        self._finished = spent_on(self._tasks(), self._day, frozenset(self._live))

    def apply_config(self, config: Config) -> None:
        self.cfg = config.agent
        self._told = None
        # Every held task is looked at again: a raised budget lets them start, and
        # one still spent parks them again.
        self.release()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tasks(self) -> list[Task]:
        return self._store.list(limit=max(len(self._store), 1))[0]

    # ---- the day's spend -------------------------------------------------------------
    def spent_today(self) -> float:
        day = utc_day(time.time())
        if day != self._day:
            self._day = day
            self._finished = spent_on(self._tasks(), day, frozenset(self._live))
            self._told = None
        return self._finished + sum(live.cost for live in self._live.values())

    def day_reason(self) -> str | None:
        """Why new prompt tasks wait now (the day budget is spent), or None."""
        budget = self.cfg.budget.per_day_usd
        if budget is None:
            return None
        if self.spent_today() < budget:
            return None
        return WAIT_REASON.format(budget=budget)

    def _day_reached(self, task_id: str | None, agent: str | None, spent: float) -> None:
        budget = self.cfg.budget.per_day_usd
        if budget is None or self._told == (self._day, budget):
            return
        self._told = (self._day, budget)
        data = {"scope": "day", "task": task_id, "agent": agent, "spent": spent, "budget": budget}
        self._publish(EVENT, data, "tasks")

    # ---- a running agent -------------------------------------------------------------
    def watch(self, task: Task, attempt: BudgetStoppable) -> Callable[[AgentRun], None]:
        """The parser's on_change for `task`'s attempt (called on the loop, per chunk)."""
        live = _Live(task.id, task.agent or DEFAULT_AGENT, attempt)
        self._live[task.id] = live
        return lambda run: self._changed(live, run)

    def _changed(self, live: _Live, run: AgentRun) -> None:
        live.cost = run.cost_usd or 0.0
        fields: dict[str, Any] = {}
        if run.session_id and run.session_id != live.session:
            live.session = fields["session_id"] = run.session_id
        now = time.monotonic()
        if run.cost_usd is not None and now - live.recorded_at >= RECORD_EVERY_S:
            live.recorded_at = now
            fields.update(cost_usd=run.cost_usd, tokens=dict(run.usage))
        if fields and self._live.get(live.task_id) is live:
            self._set(live.task_id, **fields)
        if live.stopped or self._live.get(live.task_id) is not live:
            return
        if run.is_error is not None or run.subtype is not None:
            return  # its result came: the work is done and paid for, stopping saves nothing
        b = self.cfg.budget
        if b.per_task_usd is not None and live.cost > b.per_task_usd:
            error = TASK_ERROR.format(spent=live.cost, budget=b.per_task_usd)
            self._stop(live, "task", live.cost, b.per_task_usd, error)
        elif b.per_day_usd is not None:
            spent = self.spent_today()
            if spent > b.per_day_usd:
                error = DAY_ERROR.format(spent=spent, budget=b.per_day_usd)
                self._stop(live, "day", spent, b.per_day_usd, error)
                self._told = (self._day, b.per_day_usd)

    def _stop(self, live: _Live, scope: str, spent: float, budget: float, error: str) -> None:
        live.stopped = True
        log.warning("agent over budget", extra={"task": live.task_id, "error": error})
        live.attempt.stop_for_budget(error)
        data = {
            "scope": scope,
            "task": live.task_id,
            "agent": live.agent,
            "spent": round(spent, 6),
            "budget": budget,
        }
        self._publish(EVENT, data, "tasks")

    def forget(self, attempt: BudgetStoppable) -> None:
        """An attempt aborted after an internal error: no finish() will come for it."""
        for task_id, live in list(self._live.items()):
            if live.attempt is attempt:
                del self._live[task_id]

    def finish(
        self, task_id: str, state: TaskState, error: str | None
    ) -> tuple[TaskState, str | None, dict[str, Any]]:
        """The attempt of `task_id` ended as (state, error): what the agent said makes
        it (maybe another state and error, and) the fields of the final record."""
        live = self._live.pop(task_id, None)
        run = live.attempt.agent_run() if live is not None else None
        if live is None or run is None:
            return state, error, {}
        if live.stopped:
            self._stopped.add(task_id)
        fields: dict[str, Any] = {
            "session_id": run.session_id,
            "result": _kept(run.result),
            "tokens": dict(run.usage),
            "cost_usd": run.cost_usd,
            "turns": run.turns,
        }
        if run.cost_usd is not None:
            self.spent_today()  # a new day first: this cost belongs to today
            self._finished += run.cost_usd
        if state == TaskState.COMPLETED and run.is_error:
            state = TaskState.FAILED
            error = shorten(run.result or f"the agent reported an error ({run.subtype})")
        budget = self.cfg.budget.per_day_usd
        if budget is not None and self.spent_today() >= budget:
            self._day_reached(task_id, live.agent, round(self.spent_today(), 6))
        return state, error, fields

    def no_retry(self, task_id: str) -> bool:
        """Whether the attempt that just ended was stopped by a budget: a retry would
        spend the same again (per task) or only wait (per day), so the task fails."""
        if task_id in self._stopped:
            self._stopped.discard(task_id)
            return True
        return False

    # ---- holding new prompt tasks ----------------------------------------------------
    def must_wait(self, prompt: bool) -> bool:
        """Whether a new task may not start at once (a prompt while the day is spent)."""
        return prompt and self.day_reason() is not None

    def hold(self, task: Task) -> bool:
        """True: `task` (taken off the queue) must wait; it is kept until release()."""
        if task.prompt is None:
            return False
        reason = self.day_reason()
        if reason is None:
            return False
        self._parked[task.id] = task.priority
        if task.queued_reason != reason:
            self._set(task.id, queued_reason=reason)
        self._day_reached(None, None, round(self.spent_today(), 6))
        if self._timer is None:
            delay = seconds_to_next_day(time.time()) + 1.0
            self._timer = asyncio.get_running_loop().call_later(delay, self._new_day)
        return True

    def waiting(self) -> int:
        """Held prompt tasks still queued (one cancelled meanwhile is not waiting)."""
        queued = TaskState.QUEUED
        return sum(
            1 for i in self._parked if (t := self._store.get(i)) is not None and t.state == queued
        )

    def _new_day(self) -> None:
        self._timer = None
        self.release()

    def release(self) -> None:
        """Put every held task back on the queue (it is held again if it must wait)."""
        self.stop()
        parked, self._parked = self._parked, {}
        if not parked or self._requeue is None or self._pump is None:
            self._parked.update(parked)
            return
        for task_id, priority in parked.items():
            self._requeue(task_id, priority)
        self._pump()

    # ---- records and figures ---------------------------------------------------------
    def _set(self, task_id: str, **fields: Any) -> None:
        """A field change of a live task, now if nothing else of it is on its way to the
        disk, else right after that."""
        try:
            durable = self._store.set_now(task_id, **fields)
        except RuntimeError:
            write = asyncio.create_task(self._update(task_id, fields))
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)
            return
        except Exception as exc:
            log.warning("task field not recorded", extra={"task": task_id, "error": str(exc)})
            return
        durable.add_done_callback(_quiet)

    async def _update(self, task_id: str, fields: dict[str, Any]) -> None:
        try:
            await self._store.update(task_id, **fields)
        except Exception as exc:  # ended meanwhile: the final record carries it
            log.debug("task field not recorded", extra={"task": task_id, "error": str(exc)})

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = sums(self._tasks())
        out["today"] = {
            "day": utc_day(time.time()),
            "spent_usd": round(self.spent_today(), 6),
            "per_day_usd": self.cfg.budget.per_day_usd,
            "waiting": self.waiting(),
        }
        return out


def _kept(result: str | None) -> str | None:
    if result is None or len(result) <= MAX_RESULT_CHARS:
        return result
    return result[: MAX_RESULT_CHARS - len(CUT_NOTE)] + CUT_NOTE


def _quiet(fut: asyncio.Future[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        exc = fut.exception()
        if exc is not None:
            log.warning("task field not recorded", extra={"error": str(exc)})
