"""The RQ executor: a task's attempts run on `aiwg worker` processes that take them from
an RQ queue on Redis (the other side: aiwgd.remote.worker and jobrun).

`start()` enqueues one RQ job per attempt (its id is the execution id) whose payload
says what to run, where under the worker's --root, and how to stop it, but never an
environment value; the returned RemoteAttempt follows what the worker writes back
(aiwgd.remote.attempt). The daemon's journal stays the truth: an execution that is not
its task's current attempt is stale, and its end, announced on the queue's `ends`
channel, is logged and ignored. RQ's API is synchronous, so it runs in a thread with
socket timeouts; everything else is redis.asyncio on the daemon's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import redis
import redis.asyncio as aredis
from rq import Queue
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from aiwgd.config import Config
from aiwgd.config.executors import RqExecutorConfig, default_queue, shown_url
from aiwgd.errors import Unavailable
from aiwgd.remote import keys
from aiwgd.remote.attempt import Phase, RemoteAttempt
from aiwgd.remote.connect import MAX_BLOCK_S, BadUrl, Target, unreachable
from aiwgd.remote.workers import list_workers
from aiwgd.tasks.executors.base import SpawnError
from aiwgd.tasks.launch import task_argv
from aiwgd.tasks.model import Task

log = logging.getLogger("aiwgd.remote")

LISTEN_BACKOFF_S: Final = 1.0
REMEMBER_ENDED: Final = 1024  # executions whose late `ends` message is no news


class RqExecutor:
    """Attempts on the RQ queue `cfg.queue` of the Redis at `cfg.url`."""

    def __init__(self, name: str, cfg: RqExecutorConfig, config: Config, root: Path) -> None:
        self.name = name
        self.cfg = _with_queue(cfg, root)
        self.config = config
        self.root = root
        self.target = Target(name, cfg.url, cfg.password_env)
        self._aio: aredis.Redis | None = None
        self._sync: redis.Redis | None = None
        self._live: dict[str, RemoteAttempt] = {}  # execution -> attempt being followed
        # Followed to their end here: their `ends` message may come after the reader
        # saw the end entry (and the task is no longer running then). Oldest first.
        self._followed: dict[str, None] = {}
        self._current: Callable[[str], int | None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._error: str | None = None
        self._checked: float | None = None
        self._ok = False

    # ---- config and connections ------------------------------------------------------
    def apply_config(self, config: Config) -> None:
        self.config = config
        cfg = config.executors.get(self.name)
        if cfg is None:
            return  # removed: its running attempts still finish here
        self.cfg = _with_queue(cfg, self.root)
        target = Target(self.name, cfg.url, cfg.password_env)
        if target != self.target:
            self.target = target
            self._drop_clients()

    def set_current(self, fn: Callable[[str], int | None]) -> None:
        """`fn(task id)`: the task's current attempt if it runs on this executor."""
        self._current = fn

    def aio(self) -> aredis.Redis:
        if self._aio is None:
            self._aio = self.target.async_client()
        return self._aio

    def sync(self) -> redis.Redis:
        if self._sync is None:
            self._sync = self.target.sync_client()
        return self._sync

    def block_s(self) -> float:
        """How long a read waits for output before the heartbeat is looked at."""
        return min(MAX_BLOCK_S, self.cfg.heartbeat_ttl_s / 3)

    def _drop_clients(self) -> None:
        old_aio, old_sync = self._aio, self._sync
        self._aio = self._sync = None
        if old_sync is not None:
            old_sync.close()
        if old_aio is not None:
            with contextlib.suppress(RuntimeError):  # no loop: nothing was connected
                asyncio.get_running_loop().create_task(old_aio.aclose())

    # ---- health ----------------------------------------------------------------------
    async def check(self) -> None:
        """Unavailable, with what exactly is wrong, unless Redis answers."""
        try:
            await self.aio().ping()
        except (Unavailable, BadUrl) as exc:
            self._checked_now(str(exc))
            raise Unavailable(str(exc)) from None
        except (redis.RedisError, OSError) as exc:
            self._checked_now(self.target.describe(exc))
            raise Unavailable(self.target.describe(exc)) from None
        self._checked_now(None)

    def _checked_now(self, error: str | None) -> None:
        self._checked = time.time()
        self.note(error)

    def note(self, error: str | None) -> None:
        """What the last talk with Redis said (None: it answered)."""
        self._ok = error is None
        self._error = error

    def health(self) -> dict[str, Any]:
        return {
            "type": "rq",
            "queue": self.cfg.queue,
            "url": shown_url(self.cfg.url),
            "ok": self._ok,
            "error": self._error,
            "checked": self._checked,
        }

    # ---- attempts --------------------------------------------------------------------
    async def start(
        self, task: Task, log_path: str, on_output: Callable[[], None]
    ) -> RemoteAttempt:
        payload = self.payload(task)
        try:
            await self.enqueue(payload)
        except DuplicateJobError:
            # Enqueued by an earlier daemon run that died before it said so: follow it.
            return self._follow(RemoteAttempt(self, task, log_path, on_output, reattached=True))
        except (Unavailable, BadUrl) as exc:
            raise SpawnError(str(exc)) from None
        except (redis.RedisError, OSError) as exc:
            why = self.target.describe(exc)
            self.note(why)
            if not unreachable(exc) or self.cfg.on_unreachable != "wait":
                raise SpawnError(why) from None
            log.warning(
                "Redis does not answer; the attempt waits for it",
                extra={"executor": self.name, "task": task.id, "error": why},
            )
            attempt = RemoteAttempt(
                self, task, log_path, on_output, phase=Phase.WAITING, payload=payload
            )
            return self._follow(attempt)
        self.note(None)
        return self._follow(RemoteAttempt(self, task, log_path, on_output))

    async def reattach(
        self, task: Task, log_path: str, on_output: Callable[[], None]
    ) -> RemoteAttempt:
        """After a daemon restart: follow the task's current execution from `applied`;
        nothing is enqueued again (its wait() ends it as lost if Redis knows nothing)."""
        return self._follow(RemoteAttempt(self, task, log_path, on_output, reattached=True))

    def _follow(self, attempt: RemoteAttempt) -> RemoteAttempt:
        self._live[attempt.execution] = attempt
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(
                self._listen_ends(), name=f"executor-{self.name}-ends"
            )
        return attempt

    def forget(self, attempt: RemoteAttempt) -> None:
        if self._live.get(attempt.execution) is attempt:
            del self._live[attempt.execution]
        if not attempt.saw_end:
            return  # lost or detached: a late end from it is news (stale, or for later)
        self._followed[attempt.execution] = None
        if len(self._followed) > REMEMBER_ENDED:
            del self._followed[next(iter(self._followed))]

    def payload(self, task: Task) -> dict[str, Any]:
        """The RQ job's one argument. Never an environment value (Redis keeps it)."""
        if task.env:
            raise SpawnError(
                f"env: values are not sent to executor {self.name} (Redis would store them)"
            )
        return {
            "v": keys.VERSION,
            "execution": keys.execution_id(task.id, task.attempt),
            "task": task.id,
            "attempt": task.attempt,
            "argv": task_argv(self.config, task),
            "cwd": self.relative_cwd(task.cwd),
            "root": str(self.root),
            "grace_s": float(self.config.daemon.stop_grace_seconds),
            "tail_bytes": self.config.tasks.output_tail_bytes,
            "heartbeat_ttl_s": float(self.cfg.heartbeat_ttl_s),
            "queue": self.cfg.queue,
        }

    def relative_cwd(self, cwd: str | None) -> str:
        """The cwd under the project root ('' = the root): a worker has its own --root."""
        if cwd is None:
            return ""
        path = os.path.normpath(os.path.join(self.root, cwd))
        rel = os.path.relpath(path, self.root)
        if rel == ".":
            return ""
        if rel == ".." or rel.startswith("../"):
            raise SpawnError(
                f"cwd: {cwd} is outside the project root {self.root}; executor {self.name} "
                "runs attempts under the worker's --root only"
            )
        return rel

    async def enqueue(self, payload: dict[str, Any]) -> None:
        """The RQ job for `payload` (DuplicateJobError: it exists already)."""
        execution = payload["execution"]

        def put() -> None:
            Queue(self.cfg.queue, connection=self.sync(), serializer=keys.SERIALIZER).enqueue(
                keys.JOB_FUNC,
                payload,
                job_id=execution,
                description=f"aiwg task {payload['task']} attempt {payload['attempt']}",
                retry=None,  # a retry is a new attempt, decided by the daemon
                job_timeout=-1,  # never RQ's own kill: the daemon's timeout and our ladder
                result_ttl=keys.KEEP_S,
                failure_ttl=keys.KEEP_S,
                ttl=None,
                unique=True,
            )

        await asyncio.to_thread(put)

    def job_key(self, execution: str) -> str:
        return Job.key_for(execution)

    async def push_stop(
        self, execution: str, reason: str, client: aredis.Redis | None = None
    ) -> None:
        """A durable stop request for the worker (kept as long as the attempt's keys)."""
        ctl = keys.key(self.cfg.queue, "ctl", execution)
        async with (client or self.aio()).pipeline(transaction=True) as p:
            p.rpush(ctl, reason)
            p.expire(ctl, keys.KEEP_S)
            await p.execute()

    async def cancel_if_queued(self, execution: str) -> bool:
        """Cancel the RQ job if no worker took it yet; whether it was."""

        def cancel() -> bool:
            try:
                job = Job.fetch(execution, connection=self.sync(), serializer=keys.SERIALIZER)
                if job.get_status() != JobStatus.QUEUED:
                    return False
                job.cancel()
            except (NoSuchJobError, InvalidJobOperation):
                return False
            return True

        return await asyncio.to_thread(cancel)

    async def recover(self, task: Task) -> list[int]:
        """A durable stop request for what an earlier daemon run left of `task`."""
        execution = keys.execution_id(task.id, task.attempt)
        try:
            await self.push_stop(execution, "shutdown")
            await self.cancel_if_queued(execution)
        except (Unavailable, BadUrl, redis.RedisError, OSError) as exc:
            why = exc.args[0] if isinstance(exc, Unavailable | BadUrl) else None
            log.warning(
                "could not ask a worker to stop a left-over attempt",
                extra={"execution": execution, "error": why or self.target.describe(exc)},
            )
        return []

    async def sweep(self) -> dict[str, list[int]]:
        return {}  # a worker sweeps its own host's leftovers at its start

    async def workers(self) -> list[dict[str, Any]]:
        """RQ's workers on this queue, with the task each one runs."""
        try:
            return await asyncio.to_thread(list_workers, self.sync(), self.cfg.queue)
        except (Unavailable, BadUrl) as exc:
            raise Unavailable(str(exc)) from None
        except (redis.RedisError, OSError) as exc:
            raise Unavailable(self.target.describe(exc)) from None

    # ---- late ends -------------------------------------------------------------------
    async def _listen_ends(self) -> None:
        """Log the end of an execution the daemon no longer thinks current: its result is
        not the task's (the journal is the truth)."""
        channel = keys.ends_channel(self.cfg.queue)
        while True:
            try:
                async with self.aio().pubsub() as sub:
                    await sub.subscribe(channel)
                    while True:
                        msg = await sub.get_message(
                            ignore_subscribe_messages=True, timeout=MAX_BLOCK_S
                        )
                        if msg is not None and msg.get("type") == "message":
                            self._end_published(_text(msg.get("data")))
            except asyncio.CancelledError:
                raise
            except (Unavailable, BadUrl, redis.RedisError, OSError):
                # The attempts' readers say Redis is away; resubscribe when it is back.
                await asyncio.sleep(LISTEN_BACKOFF_S)

    def _end_published(self, execution: str) -> None:
        if execution in self._live or execution in self._followed:
            return  # its reader takes (or took) the end entry from the stream
        parsed = keys.split_execution(execution)
        current = None
        if parsed is not None and self._current is not None:
            current = self._current(parsed[0])
        if parsed is not None and current == parsed[1]:
            return  # current, not followed yet (a re-attach on its way)
        log.warning(
            "ignored the end of a stale attempt",
            extra={
                "executor": self.name,
                "execution": execution,
                "task": parsed[0] if parsed else None,
                "current_attempt": current,
            },
        )

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        aio, sync = self._aio, self._sync
        self._aio = self._sync = None
        if aio is not None:
            await aio.aclose()
        if sync is not None:
            sync.close()


def _with_queue(cfg: RqExecutorConfig, root: Path) -> RqExecutorConfig:
    """`cfg` with its queue named (the default, as `aiwg worker` takes it, when unset)."""
    return cfg if cfg.queue else dataclasses.replace(cfg, queue=default_queue(root))


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
