"""RQ's job function for remote attempts: `run_attempt(payload)` (keys.JOB_FUNC).

It runs in the work horse RQ forks for each job, and runs ONE attempt there
(aiwgd.remote.horse) on an asyncio loop of its own. Before anything starts it checks
the payload against the worker's own view of things, never the daemon's: the payload
version, the cwd under the worker's --root (the project must be checked out there), the
program against the worker's own config (`agent.allowed_commands`,
`agent.allowed_roots`, `agent.env` at <root>/.aiwg/daemon.json), with the same checks
the daemon makes locally (aiwgd.tasks.policy). A refusal is an end with reason
"refused" and a note in the output saying why.

The payload carries no environment values: the child's environment is the worker's
own (its secrets hidden: every `*_env` name its config holds, and its Redis password
variable), `agent.env`, and the marks (AIWG_EXECUTION, AIWG_TASK_ID, AIWG_ROOT,
AIWG_QUEUE) that find its processes again, after a crash too (aiwgd.remote.leftovers).
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from rq import get_current_job
from rq.connections import get_connection_kwargs

from aiwgd.config import Config
from aiwgd.config.load import defaults, load_file
from aiwgd.config.paths import Paths
from aiwgd.config.schema import ValidationError
from aiwgd.remote import keys
from aiwgd.remote.horse import Horse, Plan, Result, refuse
from aiwgd.tasks.executors.local import ROOT_MARK, TASK_MARK
from aiwgd.tasks.policy import Refused, check_allowed, child_env, find_program, resolve_cwd

__all__ = ["CONTEXT", "WorkerContext", "async_client", "load_config", "run_attempt"]

CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class WorkerContext:
    """What the worker knows that a job does not say (set before it forks a horse)."""

    root: Path
    name: str
    hidden_env: frozenset[str] = frozenset()  # e.g. the --password-env variable


CONTEXT: WorkerContext | None = None


def load_config(root: Path) -> Config:
    """The worker's own config: <root>/.aiwg/daemon.json, else the defaults."""
    path = Paths(root).config_file
    return load_file(path) if path.exists() else defaults()


def async_client(sync: redis.Redis, socket_timeout: float) -> aredis.Redis:
    """An asyncio client to the server `sync` talks to (same address and credentials)."""
    kwargs = get_connection_kwargs(sync)
    conn_class = sync.connection_pool.connection_class
    cls: type[aredis.Connection] | type[aredis.UnixDomainSocketConnection]
    if issubclass(conn_class, redis.UnixDomainSocketConnection):
        cls = aredis.UnixDomainSocketConnection
    elif issubclass(conn_class, redis.SSLConnection):
        cls = aredis.SSLConnection
    else:
        cls = aredis.Connection
    # No retries inside redis-py: the horse's own loops retry, with their own backoff.
    kwargs.update(
        socket_timeout=socket_timeout,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        retry=AsyncRetry(NoBackoff(), 0),
    )
    return aredis.Redis(connection_pool=aredis.ConnectionPool(connection_class=cls, **kwargs))


def run_attempt(payload: dict[str, Any]) -> dict[str, Any]:
    """The job: run one attempt, return {"code", "signal", "reason"} once its end is
    in the stream (RQ keeps that as the job's result)."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("run_attempt runs as an RQ job, in an RQ worker")
    ctx = CONTEXT or WorkerContext(Path.cwd(), os.environ.get("RQ_WORKER_ID", "?"))
    fields = payload if isinstance(payload, dict) else {}
    execution = str(fields.get("execution") or job.id)
    queue = str(fields.get("queue") or job.origin)
    ttl = fields.get("heartbeat_ttl_s")
    ttl = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else 30.0
    client = async_client(job.connection, socket_timeout=ttl / 3 + CONNECT_TIMEOUT_S)
    return asyncio.run(_attempt(client, ctx, payload, execution, queue)).as_dict()


async def _attempt(
    client: aredis.Redis, ctx: WorkerContext, payload: Any, execution: str, queue: str
) -> Result:
    try:
        try:
            plan = make_plan(payload, ctx, execution, queue)
        except Refused as exc:
            return await refuse(client, queue, execution, str(exc))
        return await Horse(client, plan).run()
    finally:
        await client.aclose()


def _number(payload: dict[str, Any], name: str, default: float) -> float:
    value = payload.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise Refused(f"payload: {name} must be a number >= 0, not {value!r}")
    return float(value)


def make_plan(payload: Any, ctx: WorkerContext, execution: str, queue: str) -> Plan:
    """The checked plan for `payload` on this worker; Refused says why not."""
    if not isinstance(payload, dict) or payload.get("v") != keys.VERSION:
        version = payload.get("v") if isinstance(payload, dict) else None
        raise Refused(
            f"payload version {version!r} is not one this worker knows ({keys.VERSION}); "
            "update aiwg on the worker or the daemon"
        )
    argv, cwd_rel, task = payload.get("argv"), payload.get("cwd", ""), payload.get("task")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise Refused(f"payload: argv must be a non-empty list of strings, not {argv!r}")
    if not isinstance(cwd_rel, str) or not isinstance(task, str):
        raise Refused("payload: cwd and task must be strings")
    root = ctx.root
    try:
        config = load_config(root)
    except ValidationError as exc:
        raise Refused(
            f"the worker's config at {Paths(root).config_file} is invalid: {exc}"
        ) from None
    where = os.path.join(root, cwd_rel)
    if not os.path.isdir(where):
        raise Refused(
            f"the project is not checked out at --root {root}: {cwd_rel or '.'} "
            f"({where}) is not a directory on this worker"
        )
    cwd = resolve_cwd(where, root, config)
    exe = find_program(argv[0], cwd, config)
    if exe is None:
        raise Refused(
            f"command[0]: {argv[0]!r} is not an executable found on this worker's PATH "
            f"or relative to cwd {cwd}"
        )
    check_allowed(argv[0], exe, config, root)
    mark = {
        keys.EXECUTION_MARK: execution,  # first: the key a leftover scan searches by
        TASK_MARK: task,
        ROOT_MARK: str(root),
        keys.QUEUE_MARK: queue,
    }
    env = {k: v for k, v in child_env(config, {}).items() if k not in ctx.hidden_env}
    return Plan(
        execution=execution,
        queue=queue,
        argv=[exe, *argv[1:]],
        cwd=cwd,
        env=env,
        mark=mark,
        grace_s=_number(payload, "grace_s", config.daemon.stop_grace_seconds),
        tail_bytes=int(_number(payload, "tail_bytes", 16 * 1024)),
        heartbeat_ttl_s=_number(payload, "heartbeat_ttl_s", 30.0),
        worker=ctx.name,
        host=socket.gethostname(),
    )
