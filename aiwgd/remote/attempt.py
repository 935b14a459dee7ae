"""One attempt of a task on an RQ worker, seen from the daemon (the `Attempt` seam).

The worker writes everything the attempt does to its `out` stream (aiwgd.remote.keys);
`wait()` reads that stream from where the task's log left off (`applied`), writes the
output into the task log through the same OutputSink the local executor uses (so
task.logs --follow and task.output notifications work unchanged), and returns at the
worker's end entry. A stop request is a durable entry in `ctl`, which the worker reads
before its child starts and while it runs; an attempt nobody took yet is also cancelled
in RQ. A daemon stopping detaches instead: the attempt goes on and the next daemon run
reads on from `applied`.

A worker that stops heartbeating (`hb` gone) for heartbeat_ttl_s while Redis answers
makes the attempt lost: "lost" goes to `ctl` (a worker heard from again stops its child)
and the task is interrupted. While Redis is away the reader retries with backoff and
that clock stands still: an outage is nobody's fault, and the output waits in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

import redis
import redis.asyncio as aredis
from rq.exceptions import DuplicateJobError

from aiwgd.errors import Unavailable
from aiwgd.procs.child import Exit
from aiwgd.procs.output import OutputSink
from aiwgd.remote import keys
from aiwgd.remote.connect import AWAY, Away, Retrying
from aiwgd.remote.liveness import Liveness, lost_detail, who
from aiwgd.remote.reading import (
    Entry,
    end_exit,
    entries,
    id_key,
    run_fields,
)
from aiwgd.tasks.executors.base import Ending, EndReason
from aiwgd.tasks.model import Task

if TYPE_CHECKING:
    from aiwgd.remote.executor import RqExecutor

__all__ = ["NEXT", "Phase", "RemoteAttempt"]

log = logging.getLogger("aiwgd.remote")

NO_EXIT: Final = Exit(None, None)
BATCH: Final = 256  # stream entries read at once
WAITING_STATUSES: Final = frozenset({b"queued", b"scheduled", b"deferred"})  # nobody took it


class Phase(StrEnum):
    WAITING = "waiting"  # not in RQ yet: Redis was away at start (on_unreachable: wait)
    QUEUED = "queued"  # in RQ; no worker has started its program yet
    STARTED = "started"  # a worker runs it (its start entry was read)
    ENDED = "ended"


NEXT: Final[dict[Phase, frozenset[Phase]]] = {
    Phase.WAITING: frozenset({Phase.QUEUED, Phase.ENDED}),
    Phase.QUEUED: frozenset({Phase.STARTED, Phase.ENDED}),
    Phase.STARTED: frozenset({Phase.ENDED}),
    Phase.ENDED: frozenset(),
}


class RemoteAttempt:
    """One execution in Redis, from its enqueue (or re-attach) to its end entry."""

    def __init__(
        self,
        executor: RqExecutor,
        task: Task,
        log_path: str,
        on_output: Callable[[], None],
        phase: Phase = Phase.QUEUED,
        reattached: bool = False,
        payload: dict[str, Any] | None = None,
    ) -> None:
        self._ex = executor
        self.task_id = task.id
        self.execution = keys.execution_id(task.id, task.attempt)
        self.phase = phase
        self._reattached = reattached
        self._payload = payload  # to enqueue once Redis is back (WAITING)
        cfg = executor.config.tasks
        self.sink = OutputSink(log_path, cfg.log_max_bytes, cfg.output_tail_bytes, on_output)
        if task.attempt > 1 and not reattached:
            self.sink.write_note(f"[aiwgd] attempt {task.attempt} of task {task.id}\n")
        self.reason: EndReason | None = None
        self._ctl_sent = False
        self._stop_done = False  # ctl written, and the RQ job cancelled if still queued
        self.saw_end = False  # the worker's end entry was read
        self._wake = asyncio.Event()
        self._last_id = "0"  # of the last `out` entry in the log
        self._run: dict[str, Any] = {}  # where it runs, from the start entry / `run`
        self._alive = Liveness(lambda: executor.cfg.heartbeat_ttl_s)
        self._redis = Retrying(
            lambda exc: executor.target.describe(exc),
            executor.note,
            executor.aio,
            self._wake,
            self._alive.resume,
            {"execution": self.execution},
        )
        self._reading: asyncio.Future[Any] | None = None  # a blocking read in flight
        self._reader_client: aredis.Redis | None = None

    def key(self, kind: str) -> str:
        return keys.key(self._ex.cfg.queue, kind, self.execution)

    # ---- the Attempt seam ------------------------------------------------------------
    def placement(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "executor": self._ex.name,
            "execution": self.execution,
            "phase": self.phase.value,
        }
        if self._run:
            out.update({k: self._run.get(k) for k in ("worker", "host", "pid", "pgid")})
        return out

    def stop(self, reason: EndReason) -> None:
        self.reason = self.reason or reason
        self._wake.set()

    def output_tail(self) -> str:
        return self.sink.tail()

    def ask_fresh(self) -> None:
        """Nothing to refresh: what the worker says arrives as it says it."""

    async def abort(self) -> None:
        """After an internal error: ask the worker to stop it, and read no further."""
        self.reason = self.reason or EndReason.CANCELLED
        try:
            if self.phase is not Phase.WAITING and self.reason is not EndReason.SHUTDOWN:
                await self._ex.push_stop(self.execution, self.reason.value)
                await self._ex.cancel_if_queued(self.execution)
        except (redis.RedisError, OSError, Unavailable, ValueError) as exc:
            log.warning(
                "could not ask the worker to stop an attempt",
                extra={"execution": self.execution, "error": str(exc)},
            )
        finally:
            await self._done()

    async def wait(self, timeout: float) -> Ending:
        """Until the worker's end entry, a stop, a lost worker or a detach. `timeout` is
        not used: the supervisor's pausable clock calls stop(TIMEOUT)."""
        try:
            ending = await self._follow()
        finally:
            await self._done()
        log.debug(
            "remote attempt ended",
            extra={"execution": self.execution, "reason": ending.reason, "detail": ending.detail},
        )
        return ending

    # ---- following the stream --------------------------------------------------------
    def _set_phase(self, phase: Phase) -> None:
        if phase is self.phase:
            return
        if phase not in NEXT[self.phase]:
            raise RuntimeError(f"attempt {self.execution}: {self.phase} -> {phase} is no move")
        self.phase = phase

    async def _done(self) -> None:
        if self.phase is not Phase.ENDED:
            self._set_phase(Phase.ENDED)
            self.sink.close()
            self._ex.forget(self)
            await self._close_reader()

    async def _follow(self) -> Ending:
        if self.phase is Phase.WAITING:
            early = await self._enqueue_when_back()
            if early is not None:
                return early
        if self._reattached:
            early = await self._pick_up()
            if early is not None:
                return early
        while True:
            self._wake.clear()
            if self.reason is EndReason.SHUTDOWN:
                return Ending(NO_EXIT, EndReason.DETACHED)
            if self.reason is not None and not self._stop_done:
                early = await self._send_stop(self.reason)
                if early is not None:
                    return early
            entries = await self._read()
            if entries is None or isinstance(entries, Away):
                continue  # a stop woke us, or Redis is away (retried after a backoff)
            if entries:
                ending = await self._apply(entries)
                if ending is not None:
                    return ending
            else:
                lost = await self._check_alive()
                if lost is not None:
                    return lost

    async def _enqueue_when_back(self) -> Ending | None:
        """on_unreachable "wait": enqueue once Redis answers; a stop meanwhile ends it
        here (nothing ran anywhere)."""
        assert self._payload is not None
        while self.reason is None:
            try:
                await self._ex.enqueue(self._payload)
            except DuplicateJobError:
                pass  # an earlier try got there; its answer was lost on the way
            except (redis.RedisError, OSError) as exc:
                self._redis.away(exc)
                await self._redis.pause()
                continue
            self._redis.back()
            self._set_phase(Phase.QUEUED)
            return None
        return Ending(NO_EXIT, self.reason)

    async def _pick_up(self) -> Ending | None:
        """After a daemon restart: go on from `applied`, or end it as lost when Redis
        knows nothing of it; its end may already have been read (and `applied`)."""
        job_key = self._ex.job_key(self.execution)

        async def look(c: aredis.Redis) -> list[Any]:
            async with c.pipeline(transaction=False) as p:
                p.exists(job_key, self.key("out"), self.key("run"))
                p.get(self.key("applied"))
                p.hgetall(self.key("run"))
                p.xrevrange(self.key("out"), count=1)
                return list(await p.execute())

        while True:
            if self.reason is EndReason.SHUTDOWN:
                return Ending(NO_EXIT, EndReason.DETACHED)
            got = await self._redis.call(look)
            if not isinstance(got, Away):
                break
        known, applied, run, last = got
        if not known:
            return Ending(
                NO_EXIT,
                EndReason.LOST,
                f"Redis knows nothing of execution {self.execution} (no RQ job, output or "
                "run): it was lost while the daemon was away",
            )
        if applied:
            self._last_id = applied.decode()
        if run:
            self._started(run)
        if last:
            entry_id, fields = last[0]
            if fields.get(b"k") == b"end" and id_key(entry_id) <= id_key(self._last_id):
                return self._ending(fields)
        return None

    async def _send_stop(self, reason: EndReason) -> Ending | None:
        """The stop request, durable in `ctl`; a job nobody took is cancelled in RQ and
        ends here (a worker taking it meanwhile finds the request before it spawns).
        Redis away: tried again on the next turn."""
        if not self._ctl_sent:
            asked = await self._redis.call(
                lambda c: self._ex.push_stop(self.execution, reason.value, c)
            )
            if asked is AWAY:
                return None
            self._ctl_sent = True
        if self.phase is Phase.QUEUED:
            try:
                cancelled = await self._ex.cancel_if_queued(self.execution)
            except (redis.RedisError, OSError) as exc:
                self._redis.away(exc)
                await self._redis.pause()
                return None
            self._redis.back()
            if cancelled:
                return Ending(NO_EXIT, reason)
        self._stop_done = True
        return None

    async def _read(self) -> list[Entry] | Away | None:
        """The next `out` entries, waiting up to a heartbeat tick ([]: none came); None
        when a stop woke us. The read a stop interrupted goes on and is taken up next
        time: a cancelled blocking read can hold redis-py for its whole block."""
        if self._reading is None:
            block_ms = max(1, int(self._ex.block_s() * 1000))
            out_key, since = self.key("out"), self._last_id
            self._reading = asyncio.ensure_future(
                self._redis.call(
                    lambda c: c.xread({out_key: since}, count=BATCH, block=block_ms),
                    client=self._reader,
                )
            )
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({self._reading, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        if not self._reading.done():
            return None
        got, self._reading = self._reading.result(), None
        if isinstance(got, Away):
            return got
        return entries(got)

    def _reader(self) -> aredis.Redis:
        """This attempt's own connection for blocking reads: closing it ends one at once."""
        if self._reader_client is None:
            self._reader_client = self._ex.target.async_client(single=True)
        return self._reader_client

    async def _close_reader(self) -> None:
        reading, self._reading = self._reading, None
        if reading is not None and not reading.done():
            reading.cancel()
            reading.add_done_callback(_consume)
        client, self._reader_client = self._reader_client, None
        if client is not None:
            with contextlib.suppress(Exception):
                if client.connection is not None:
                    await client.connection.disconnect(nowait=True)
                await client.aclose()

    async def _apply(self, entries: list[Entry]) -> Ending | None:
        ending: Ending | None = None
        for entry_id, fields in entries:
            kind = fields.get(b"k")
            if kind == b"out":
                self.sink.feed(fields.get(b"d", b""))
            elif kind == b"start":
                self._started(fields)
            elif kind == b"end":
                ending = self._ending(fields)
            self._last_id = entry_id.decode()
            if ending is not None:
                break
        self._alive.heard()
        # Written after the log has the output: a daemon dying in between writes a
        # batch twice at worst, never loses one.
        last = self._last_id
        await self._redis.call(
            lambda c: c.set(self.key("applied"), last, ex=keys.KEEP_S), pause=False
        )
        return ending

    def _started(self, fields: dict[Any, Any]) -> None:
        self._run = run_fields(fields)
        if self.phase is Phase.QUEUED:
            self._set_phase(Phase.STARTED)

    def _ending(self, fields: dict[bytes, bytes]) -> Ending:
        self.saw_end = True
        ex, said = end_exit(fields)
        if self.reason is not None:
            return Ending(ex, self.reason)
        if said == "shutdown":  # the worker was stopped under it, not the task
            return Ending(ex, EndReason.LOST, f"{who(self._run)} shut down while it ran")
        if not said:
            return Ending(ex, None)
        # Refused (its cwd or program is not there): the worker's own note says why.
        lines = [line for line in self.sink.tail().splitlines() if said in line]
        return Ending(ex, None, lines[-1] if lines else f"{said} by the worker")

    async def _check_alive(self) -> Ending | None:
        """A tick without output: the worker's heartbeat, or the job still waiting in
        RQ, keeps it alive; heartbeat_ttl_s of neither (Redis answering) loses it."""
        hb = await self._redis.call(lambda c: c.get(self.key("hb")))
        if isinstance(hb, Away):
            return None
        if hb:
            self._alive.heard(hb, self._run)
            return None
        job_key = self._ex.job_key(self.execution)
        status = await self._redis.call(lambda c: c.hget(job_key, "status"))
        if isinstance(status, Away):
            return None
        if status in WAITING_STATUSES:
            self._alive.heard()
            return None
        if not self._alive.expired():
            return None
        # A worker heard from again must stop its child: the task is interrupted here.
        await self._redis.call(lambda c: self._ex.push_stop(self.execution, "lost", c), pause=False)
        detail = lost_detail(self._run, status, self._ex.cfg.heartbeat_ttl_s)
        # Asked to stop meanwhile (a cancel, a timeout): that is what the task shows.
        return Ending(NO_EXIT, self.reason or EndReason.LOST, detail)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # retrieved: a read dropped at the end has nobody to tell
