"""Retention: which finished tasks the store prunes, and when a busy store prunes
before the periodic run. Pure functions of the index and `tasks` config
(retention_days, max_finished, max_finished_mb); aiwgd.tasks.store.store removes what
they name, journal first."""

from __future__ import annotations

import contextlib
import os

from aiwgd.config.tasks import TasksSection
from aiwgd.tasks.model import Task
from aiwgd.tasks.store.index import TaskIndex


def max_finished_bytes(cfg: TasksSection) -> int:
    return int(cfg.max_finished_mb * 1_048_576)


def doomed(index: TaskIndex, cfg: TasksSection, now: float) -> list[Task]:
    """Finished tasks past retention: by age, then count, then bytes."""
    cutoff = now - cfg.retention_days * 86_400
    return index.expired(cutoff, cfg.max_finished, max_finished_bytes(cfg))


def overdue(index: TaskIndex, cfg: TasksSection) -> bool:
    """Whether to prune now rather than at the next periodic run: a busy daemon must not
    pile up far more finished tasks than tasks.max_finished (or max_finished_mb), so
    once the excess reaches 10% (at least 100 tasks)."""
    limit = cfg.max_finished
    budget = max_finished_bytes(cfg)
    return index.finished() >= limit + max(100, limit // 10) or index.over_budget(
        budget + budget // 10
    )


def unlink_all(paths: list[str]) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            os.unlink(p)
