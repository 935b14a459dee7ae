"""`aiwg worker`: RQ workers that run this project's remote attempts.

    aiwg worker --url unix:///run/redis.sock [--queue Q] [--root DIR]
                [--max-parallel N] [--name NAME] [--password-env VAR]

RQ runs the loop (`AiwgWorker` is an `rq.Worker`): it takes a job from the queue and
forks a work horse that runs `aiwgd.remote.jobrun.run_attempt` (one attempt). What is
ours on top of RQ:

- the horse dies with its worker (PR_SET_PDEATHSIG): a worker killed with -9 stops
  heartbeating at once, and its attempt's program (in a session of its own) is stopped
  by the next start on this host (aiwgd.remote.leftovers);
- a cold stop (a second SIGTERM) SIGTERMs the horse, which takes its child down the
  stop ladder and records the end ("shutdown"), instead of RQ's bare SIGKILL of the
  horse, which would leave the child running;
- Redis going away while a horse runs is waited out (RQ's own heartbeats raise then),
  so the attempt goes on and reports when Redis is back;
- `--max-parallel N` runs N such workers under RQ's WorkerPool (`AiwgPool`), named
  NAME-1..NAME-N, each registered in RQ (rq's own `Worker.all(queue=...)` lists them).

A start is refused with one line (exit 2) when the root is missing, its config is
invalid, Redis cannot be reached or refuses the password.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, Worker
from rq.exceptions import StopRequested
from rq.job import Job
from rq.serializers import resolve_serializer
from rq.worker_pool import ForkProcess, WorkerData, WorkerPool

from aiwgd.remote import jobrun, keys, leftovers
from aiwgd.remote.workersetup import (
    Options,
    Setup,
    StartError,
    check_name,
    die_with_parent,
    prepare,
)

log = logging.getLogger("aiwgd.remote")

HORSE_SLACK_S = 5.0  # past the attempt's grace, a cold stop SIGKILLs a horse still there
BACKOFF_MAX_S = 5.0
# RQ's default (420 s) keeps a killed worker's record, "busy" in `aiwg worker list`, for
# 8 minutes; with 45 an idle worker heartbeats every 30 s and a dead one is gone from the
# list within 105 s (RQ's key lives worker_ttl + 60 s).
WORKER_TTL_S = 45
REDIS_AWAY = (RedisConnectionError, RedisTimeoutError, OSError)
T = TypeVar("T")


class RefusedJob(Exception):
    """A job that is not one attempt of ours."""


class AiwgJob(Job):
    """An RQ job as an aiwg worker runs it: only the attempt function, and no callbacks.
    RQ would import and call whatever function (or callback) a job names; a worker runs
    programs for whoever may write to its queue, and nothing else."""

    def _execute(self) -> Any:
        if self.func_name != keys.JOB_FUNC or self.kwargs or len(self.args) != 1:
            raise RefusedJob(
                f"an aiwg worker runs {keys.JOB_FUNC}(payload) only, not {self.func_name}"
            )
        return super()._execute()

    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None


class AiwgWorker(Worker):
    """RQ's forking worker, with our stop ladder and Redis outages waited out."""

    job_class = AiwgJob

    grace_s = 10.0  # the current job's grace (from its payload)
    # RQ backs off up to 60 s between tries while Redis is away; a restarted Redis
    # should see its workers back within seconds.
    max_connection_wait_time = BACKOFF_MAX_S

    def execute_job(self, job: Job, queue: Queue) -> None:
        with contextlib.suppress(Exception):
            self.grace_s = float(job.args[0]["grace_s"])
        try:
            super().execute_job(job, queue)
        except REDIS_AWAY as exc:
            # Only bookkeeping around a horse that has ended (or never started) talks
            # to Redis unguarded here; the attempt's own end is in its stream.
            self.log.warning("Worker %s: Redis away around job %s: %s", self.name, job.id, exc)

    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()  # type: ignore[no-untyped-call]
        assert self.pid is not None
        die_with_parent(self.pid)

    def kill_horse(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Ask the horse to stop its attempt (SIGTERM: the ladder, then an end with
        reason "shutdown"); SIGKILL it only if it is still there after the grace."""
        pid = self.horse_pid
        if not pid:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + self.grace_s + HORSE_SLACK_S
        while time.monotonic() < deadline:
            try:  # WNOWAIT: RQ's wait_for_horse reaps it
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return
            except ChildProcessError:
                return
            time.sleep(0.05)
        self.log.error("Worker %s: horse %s still there after the grace; SIGKILL", self.name, pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        try:
            super().heartbeat(timeout)
        except REDIS_AWAY as exc:
            self.log.warning("Worker %s: heartbeat failed, Redis away: %s", self.name, exc)

    def maintain_heartbeats(self, job: Job, execution: Any) -> None:
        # Called while a horse runs: an error here would end RQ's loop (and the horse).
        try:
            super().maintain_heartbeats(job, execution)
        except REDIS_AWAY as exc:
            self.log.warning("Worker %s: heartbeat failed, Redis away: %s", self.name, exc)

    def run_maintenance_tasks(self) -> None:
        try:
            super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        except REDIS_AWAY as exc:
            self.log.warning("Worker %s: maintenance skipped, Redis away: %s", self.name, exc)

    def subscribe(self) -> None:
        # Right after its birth is registered (RQ's bootstrap): a Redis restart then
        # ended the worker before its loop began.
        self._until_redis_answers(lambda: super(AiwgWorker, self).subscribe())  # type: ignore[no-untyped-call]

    def set_state(self, state: Any, pipeline: Any = None) -> None:
        if pipeline is not None:
            super().set_state(state, pipeline)
            return
        self._until_redis_answers(lambda: super(AiwgWorker, self).set_state(state))

    def check_for_suspension(self, burst: bool) -> None:
        self._until_redis_answers(lambda: super(AiwgWorker, self).check_for_suspension(burst))

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        # RQ retries its BLPOP while Redis is away, but not the calls around it.
        return self._until_redis_answers(
            lambda: super(AiwgWorker, self).dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        )

    def _until_redis_answers(self, call: Callable[[], T]) -> T:
        delay = 0.1
        while True:
            try:
                return call()
            except REDIS_AWAY as exc:
                if self._stop_requested:
                    raise StopRequested() from None
                self.log.warning("Worker %s: Redis away (%s); retrying", self.name, exc)
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    def teardown(self) -> None:
        try:
            super().teardown()  # type: ignore[no-untyped-call]
        except REDIS_AWAY as exc:
            # RQ forgets a worker whose key expires: its death goes unrecorded, no more.
            self.log.warning("Worker %s: cannot record its stop, Redis away: %s", self.name, exc)


def make_worker(setup: Setup, name: str, connection: redis.Redis) -> AiwgWorker:
    jobrun.CONTEXT = setup.context(name)  # the horses it forks read it
    queue = Queue(setup.queue, connection=connection, job_class=AiwgJob, serializer=keys.SERIALIZER)
    return AiwgWorker(
        [queue],
        name=name,
        connection=connection,
        serializer=keys.SERIALIZER,
        worker_ttl=WORKER_TTL_S,
    )


def _sweep(setup: Setup) -> None:
    with setup.client() as client:
        try:
            leftovers.sweep(
                client, setup.queue, str(setup.root), socket.gethostname(), setup.grace_s
            )
        except redis.RedisError as exc:
            log.warning("leftover sweep skipped: Redis away", extra={"error": str(exc)})


def _member(setup: Setup, name: str, parent: int, sweep: bool) -> None:
    """One worker of a pool, in a process forked by the pool."""
    die_with_parent(parent)
    if sweep:  # it replaces a member that died: what that one's horse left is stopped
        _sweep(setup)
    connection = setup.client()
    with contextlib.suppress(redis.RedisError, StartError):
        check_name(connection, name)  # a dead member's registration, on a respawn
    make_worker(setup, name, connection).work(logging_level="INFO")


class AiwgPool(WorkerPool):
    """RQ's WorkerPool with our workers, named NAME-1..NAME-N, each dying with it."""

    def __init__(self, setup: Setup, connection: redis.Redis) -> None:
        super().__init__(
            [setup.queue],
            connection,
            num_workers=setup.max_parallel,
            serializer=resolve_serializer(keys.SERIALIZER),
        )
        self.setup = setup

    def start_worker(
        self,
        count: int | None = None,
        burst: bool = True,
        _sleep: float = 0,
        logging_level: str = "INFO",
    ) -> None:
        name = next(n for n in self.setup.names() if n not in self.worker_dict)
        # count is None when the pool replaces a member that died.
        args = (self.setup, name, os.getpid(), count is None)
        process = ForkProcess(target=_member, args=args, name=f"aiwg worker {name}")
        process.start()
        assert process.pid is not None
        self.worker_dict[name] = WorkerData(name=name, pid=process.pid, process=process)


def run(opts: Options) -> int:
    """Run the worker(s) until stopped; StartError before anything runs."""
    setup = prepare(opts)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _sweep(setup)
    connection = setup.client()
    if setup.max_parallel == 1:
        make_worker(setup, setup.name, connection).work(logging_level="INFO")
        return 0
    AiwgPool(setup, connection).start(burst=False, logging_level="INFO")
    return 0
