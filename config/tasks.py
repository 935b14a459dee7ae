"""Config sections for tasks: the store's retention and durability knobs.

The supervisor's `agent` section lives in this module too (issue 3, part 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiwgd.config.schema import spec


@dataclass
class TasksSection:
    requeue_interrupted: bool = spec(
        True, doc="a task running when the daemon died is requeued (true) or failed (false)"
    )
    retention_days: float = spec(
        7, gt=0, le=36_500, doc="finished tasks older than this are pruned with their logs"
    )
    max_finished: int = spec(
        10_000, ge=0, le=10_000_000, doc="at most this many finished tasks are kept"
    )
    output_tail_bytes: int = spec(
        16_384, ge=0, le=1_048_576, doc="output kept in the store per task (full log on disk)"
    )
    log_max_bytes: int = spec(
        10 * 1_048_576, ge=1_024, le=1 << 40, doc="cap of each task's log file"
    )
    compact_every: int = spec(
        10_000, ge=10, le=10_000_000, doc="journal entries before tasks.json is rewritten"
    )
    prune_interval_minutes: float = spec(60, gt=0, le=10_080, doc="how often to prune")
