"""The workers of an RQ executor as RQ itself registers them (`aiwg worker list`):
each with the execution it runs and that execution's task. Synchronous (RQ's API):
the executor calls it in a thread."""

from __future__ import annotations

from typing import Any

import redis
from rq import Queue, Worker
from rq.worker import BaseWorker

from aiwgd.remote import keys


def list_workers(connection: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """One dict per worker registered on `queue`, by name."""
    found = Worker.all(queue=Queue(queue, connection=connection))
    return sorted((describe(w) for w in found), key=lambda w: str(w["name"]))


def describe(worker: BaseWorker) -> dict[str, Any]:
    execution = worker.get_current_job_id()
    parsed = keys.split_execution(execution) if execution else None
    beat = worker.last_heartbeat
    return {
        "name": worker.name,
        "host": worker.hostname,
        "pid": worker.pid,
        "state": str(worker.get_state()),
        "execution": execution,
        "task": parsed[0] if parsed else None,
        "last_heartbeat": beat.isoformat() if beat is not None else None,
    }
