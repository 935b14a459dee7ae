"""Agent spend summed from stored tasks: per agent, per UTC day, and one day's total.

Pure functions over Task records (no I/O), so the same sums serve task.stats and the
daily budget at start-up: the store is the truth, and a restart derives the day's
spend from it again. A task counts on the UTC day it finished (a retried one, still
queued, on the day its last attempt started).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable
from typing import Any

from aiwgd.agents.usage import TOKEN_KEYS
from aiwgd.tasks.model import Task

__all__ = ["DEFAULT_AGENT", "seconds_to_next_day", "spent_on", "sums", "task_day", "utc_day"]

DEFAULT_AGENT = "default"  # the key of tasks that name no agent


def utc_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def seconds_to_next_day(now: float) -> float:
    """Wall seconds from `now` until the next UTC midnight."""
    t = time.gmtime(now)
    midnight = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, 0))
    return max(midnight + 86_400 - now, 0.0)


def task_day(task: Task) -> str | None:
    when = task.finished_at or task.started_at
    return None if when is None else utc_day(when)


def _empty() -> dict[str, Any]:
    out: dict[str, Any] = {"tasks": 0, "cost_usd": 0.0}
    out.update(dict.fromkeys(TOKEN_KEYS, 0))
    return out


def _add(into: dict[str, Any], task: Task) -> None:
    into["tasks"] += 1
    into["cost_usd"] = round(into["cost_usd"] + (task.cost_usd or 0.0), 9)
    for key, n in (task.tokens or {}).items():
        if key in into and type(n) is int:
            into[key] += n


def sums(tasks: Iterable[Task]) -> dict[str, dict[str, dict[str, Any]]]:
    """{"agents": {agent: sum}, "days": {YYYY-MM-DD: sum}} over tasks with a cost or
    token counts; a sum is {tasks, cost_usd, input_tokens, output_tokens, ...}."""
    agents: dict[str, dict[str, Any]] = {}
    days: dict[str, dict[str, Any]] = {}
    for task in tasks:
        if task.cost_usd is None and task.tokens is None:
            continue
        _add(agents.setdefault(task.agent or DEFAULT_AGENT, _empty()), task)
        day = task_day(task)
        if day is not None:
            _add(days.setdefault(day, _empty()), task)
    return {"agents": agents, "days": dict(sorted(days.items()))}


def spent_on(tasks: Iterable[Task], day: str, skip: frozenset[str] = frozenset()) -> float:
    """The cost of the tasks (but those in `skip`: running ones, counted live) of `day`."""
    return sum(
        t.cost_usd
        for t in tasks
        if t.cost_usd is not None and t.id not in skip and task_day(t) == day
    )
