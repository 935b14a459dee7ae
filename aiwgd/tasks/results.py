"""What the task methods answer, as types (published by rpc.discover).

A task is answered as `Task.to_dict()` builds it, so its schema is generated from the
`Task` dataclass itself: a field added there is in the document at once.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired, TypedDict

from aiwgd.rpc.resultschema import With, Without
from aiwgd.tasks.model import Task, TaskState


class TaskUsage(TypedDict):
    pid: int
    processes: Annotated[int, "live processes in its tree"]
    cpu_percent: Annotated[float, "% of one core over the monitor's last interval"]
    rss_bytes: int
    fds: int
    threads: int


class LiveUsage(TypedDict):
    usage: NotRequired[Annotated[TaskUsage, "while it runs: the monitor's latest sample"]]


class QueuePlace(TypedDict):
    place: Annotated[int, "1: it starts next when a slot is free"]
    of: Annotated[int, "ready queued tasks (held ones included)"]


class Queued(TypedDict):
    queue_position: NotRequired[
        Annotated[
            QueuePlace | None,
            "while queued: its place in line; null while a retry or start_at delay runs",
        ]
    ]


class Paused(TypedDict):
    paused: Annotated[bool, "stopped by task.pause (its state stays running)"]


# task.get: the record, and while it runs the resource use of its process tree.
TaskView = Annotated[Task, With(LiveUsage), With(Queued), With(Paused)]
# task.list's summaries: the record without its output (Task.summary()).
TaskSummary = Annotated[Task, Without("output_tail"), With(Paused)]
StateCounts = Annotated[dict[str, int], "tasks per state, every state (zeros included)"]


class TaskList(TypedDict):
    tasks: Annotated[list[TaskSummary], "newest first"]
    total: Annotated[int, "tasks matching the filters, in all"]
    limit: int
    offset: int


class CostSum(TypedDict):
    tasks: Annotated[int, "tasks with a cost or token counts (stream-json agents)"]
    cost_usd: float
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class CostsToday(TypedDict):
    day: Annotated[str, "the UTC day, YYYY-MM-DD"]
    spent_usd: Annotated[float, "finished tasks of the day plus running estimates"]
    per_day_usd: Annotated[float | None, "agent.budget.per_day_usd"]
    waiting: Annotated[int, "prompt tasks held queued by the daily budget"]


class Costs(TypedDict):
    agents: Annotated[dict[str, CostSum], 'per agent ("default": tasks naming none)']
    days: Annotated[dict[str, CostSum], "per UTC day a task finished, oldest first"]
    today: CostsToday


class GroupStats(TypedDict):
    running: int
    queued: int
    max_parallel: Annotated[int | None, "tasks.groups.<name>.max_parallel"]
    paused: Annotated[bool, "task.pause {group}: it starts nothing new"]
    max_active: Annotated[int, "the most of its tasks running at once since start"]


class PauseResult(TypedDict):
    id: NotRequired[str]
    group: NotRequired[str]
    paused: Annotated[bool, "what it is now"]
    tasks: Annotated[list[str], "the running tasks stopped / continued"]


class TaskStats(TypedDict):
    counts: StateCounts
    running: int
    queued: int
    waiting_retry: Annotated[int, "queued tasks waiting out a retry backoff"]
    cap: Annotated[int, "daemon.max_parallel_actions"]
    max_active: Annotated[int, "the most tasks ever running at once"]
    stored: int
    totals: Annotated[dict[str, int], "counts since the daemon started"]
    accepting: bool
    costs: Annotated[Costs, "agent tokens and cost of the stored tasks"]
    groups: Annotated[dict[str, GroupStats], "per group of tasks.groups"]


class TaskLogs(TypedDict):
    """task.logs without `follow`: one chunk of the log."""

    id: str
    state: TaskState
    offset: int
    data: str
    next_offset: int
    size: int
    eof: bool


class TaskLogsFollowed(TypedDict):
    """task.logs with `follow`: the end, once the output came as notifications."""

    id: str
    state: TaskState | Literal["pruned"]
    next_offset: int
    size: int
    eof: bool
    exit_code: int | None


TaskLogsResult = TaskLogs | TaskLogsFollowed
