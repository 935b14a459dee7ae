"""Retention: which finished tasks the store prunes, and when a busy store prunes
before the periodic run. Pure functions of the index and `tasks` config
(retention_days, max_finished, max_finished_mb); aiwgd.tasks.store.store removes what
they name, journal first. prune_worktrees: the worktrees of pruned tasks."""

from __future__ import annotations

import contextlib
import logging
import os

from aiwgd.agents.worktree import Worktree, WorktreeError, Worktrees
from aiwgd.config.tasks import TasksSection
from aiwgd.tasks.model import Task
from aiwgd.tasks.store.index import TaskIndex

log = logging.getLogger("aiwgd.store")


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


async def prune_worktrees(wts: Worktrees, referenced: set[str], kept: set[str]) -> list[str]:
    """Remove the worktrees (.aiwg/worktrees/<task-id>) of tasks the store pruned (no id
    in `referenced`: the stored tasks and the worktrees they resumed), when
    their work is merged; unmerged work is never deleted: it is logged once (`kept`
    remembers which) and stays for the user to merge or discard. The ids removed."""
    try:
        names = [e.name for e in os.scandir(wts.dir) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    if not names:
        return []
    found: list[Worktree] = []
    for name in names:
        if name in referenced:
            continue
        try:
            wt = await wts.find(name)
        except WorktreeError as exc:
            log.warning("worktree %s of a pruned task not checked: %s", name, exc)
            continue
        if wt is not None:
            found.append(wt)
    removed = await wts.prune(found)
    for wt in found:
        if wt.task_id not in removed and wt.task_id not in kept:
            kept.add(wt.task_id)
            log.warning(
                "worktree of pruned task %s kept: its work is not merged (aiwg task "
                "discard cannot reach it any more: git worktree remove %s)",
                wt.task_id,
                wt.path,
            )
    if removed:
        log.info("removed the merged worktrees of pruned tasks", extra={"tasks": removed})
    return removed
