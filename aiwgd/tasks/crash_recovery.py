"""Crash recovery at the supervisor's start: nothing an earlier run started is left
running, and every attempt it may have had running is counted as interrupted.

An attempt's `running` state is durable before its program starts (the supervisor
writes it first), so after a kill -9 at any moment the next start finds every task
that may have a process running. The executor stops what is left (local: by the
recorded PID + create time and by the AIWG_TASK_ID mark in the processes'
environment, which also covers an attempt whose runner was never recorded), the
attempt is recorded interrupted and handled per its interrupt policy
(aiwgd.tasks.retries), and one sweep stops anything else an earlier run started.

An attempt on a remote executor is not recovered: it may well still run on its worker,
so it is handed back to be re-attached (its state stays running).
"""

from __future__ import annotations

import logging

from aiwgd.tasks.executors.routing import Executors
from aiwgd.tasks.model import Task
from aiwgd.tasks.store.store import TaskStore

# The supervisor's logger: these lines are part of its start, as they always were.
log = logging.getLogger("aiwgd.supervisor")


async def recover(store: TaskStore, executor: Executors) -> tuple[int, list[Task]]:
    """Stop what an earlier run left and record its attempts interrupted; returns how
    many tasks were found running (the supervisor's `recovered` total) and the remote
    attempts to re-attach to."""
    recovered = 0
    reattach: list[Task] = []
    for task in store.found_running():
        if executor.reattachable(task):
            reattach.append(task)
            continue
        hit = await executor.recover(task)
        if hit:
            log.warning(
                "killed processes left by an interrupted task",
                extra={"task": task.id, "pids": hit},
            )
        recovered += 1
        await store.recover(task.id)
    for task_id, pids in (await executor.sweep()).items():
        # An escapee of a task that ended, or an attempt whose running record was
        # lost with the journal's tail: never left running.
        log.warning("stopped processes an earlier run left", extra={"task": task_id, "pids": pids})
    for task in store.interrupted():  # a crash between the two updates
        await store.recover(task.id)
    return recovered, reattach
