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
import json
import logging
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, TypeVar

import redis
import redis.asyncio as aredis

from aiwgd.errors import Unavailable
from aiwgd.procs.child import Exit
from aiwgd.procs.output import OutputSink
from aiwgd.remote import keys
from aiwgd.tasks.executors.base import Ending, EndReason
from aiwgd.tasks.model import Task

if TYPE_CHECKING:
    from aiwgd.remote.executor import RqExecutor

log = logging.getLogger("aiwgd.remote")

T = TypeVar("T")
NO_EXIT: Final = Exit(None, None)
BATCH: Final = 256  # stream entries read at once
FIRST_BACKOFF_S: Final = 0.1
MAX_BACKOFF_S: Final = 2.0
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


class _Away:
    """What a Redis call returns when Redis did not answer (it was retried later)."""


AWAY: Final = _Away()


def execution_of(task_id: str, attempt: int) -> str:
    """The execution id of a task's attempt, which is also its RQ job id.

    RQ 3.0 takes only [A-Za-z0-9_-] in a job id, and keys.execution_id joins with a
    dot: until keys.py says otherwise, the dot becomes a dash (task ids are [0-9a-z])."""
    return keys.execution_id(task_id, attempt).replace(".", "-")


def task_of(execution: str) -> tuple[str, int] | None:
    """(task id, attempt) of an execution id, or None if it is not one."""
    task_id, _, attempt = execution.replace("-", ".").rpartition(".")
    return keys.split_execution(f"{task_id}.{attempt}")


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
        self.execution = execution_of(task.id, task.attempt)
        self.phase = phase
        self._reattached = reattached
        self._payload = payload  # to enqueue once Redis is back (WAITING)
        cfg = executor.config.tasks
        self.sink = OutputSink(log_path, cfg.log_max_bytes, cfg.output_tail_bytes, on_output)
        if task.attempt > 1 and not reattached:
            self.sink.write_note(f"[aiwgd] attempt {task.attempt} of task {task.id}\n")
        self.reason: EndReason | None = None
        self._ctl_sent = False
        self._wake = asyncio.Event()
        self._last_id = "0"  # of the last `out` entry in the log
        self._run: dict[str, Any] = {}  # where it runs, from the start entry / `run`
        self._last_alive = time.monotonic()  # a heartbeat, output, or still queued
        self._away_since: float | None = None
        self._backoff = FIRST_BACKOFF_S
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
        except (redis.RedisError, OSError) as exc:
            log.warning(
                "could not ask the worker to stop an attempt",
                extra={"execution": self.execution, "error": self._ex.target.describe(exc)},
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
            if self.reason is not None and not self._ctl_sent:
                early = await self._send_stop(self.reason)
                if early is not None:
                    return early
            entries = await self._read()
            if isinstance(entries, _Away):
                continue
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
            except (redis.RedisError, OSError) as exc:
                self._away(exc)
                await self._pause()
                continue
            self._back()
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
            got = await self._call(look)
            if not isinstance(got, _Away):
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
            self._started({k.decode(): v for k, v in run.items()})
        if last:
            entry_id, fields = last[0]
            if fields.get(b"k") == b"end" and _id_key(entry_id) <= _id_key(self._last_id):
                return self._ending(fields)
        return None

    async def _send_stop(self, reason: EndReason) -> Ending | None:
        """The stop request, durable in `ctl`; a job nobody took is cancelled in RQ and
        ends here (a worker taking it meanwhile finds the request before it spawns)."""
        if await self._call(lambda c: self._ex.push_stop(self.execution, reason.value, c)) is AWAY:
            return None
        self._ctl_sent = True
        if self.phase is Phase.QUEUED:
            try:
                cancelled = await self._ex.cancel_if_queued(self.execution)
            except (redis.RedisError, OSError) as exc:
                log.warning(
                    "could not cancel a queued attempt in RQ; its worker sees the stop request",
                    extra={"execution": self.execution, "error": self._ex.target.describe(exc)},
                )
                cancelled = False
            if cancelled:
                return Ending(NO_EXIT, reason)
        return None

    async def _read(self) -> list[tuple[bytes, dict[bytes, bytes]]] | _Away:
        """The next `out` entries, waiting up to a heartbeat tick; [] if none came or a
        stop woke us. A read a stop interrupted goes on and is taken up next time: a
        cancelled blocking read can hold redis-py for its whole block."""
        if self._reading is None:
            block_ms = max(1, int(self._ex.block_s() * 1000))
            out_key, since = self.key("out"), self._last_id
            self._reading = asyncio.ensure_future(
                self._call(
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
            return []
        got, self._reading = self._reading.result(), None
        if isinstance(got, _Away):
            return got
        return _entries(got)

    def _reader(self) -> aredis.Redis:
        """This attempt's own connection for blocking reads: closing it ends one at once."""
        if self._reader_client is None:
            self._reader_client = self._ex.target.async_client(self._ex.block_s(), single=True)
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

    async def _apply(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> Ending | None:
        ending: Ending | None = None
        for entry_id, fields in entries:
            kind = fields.get(b"k")
            if kind == b"out":
                self.sink.feed(fields.get(b"d", b""))
            elif kind == b"start":
                self._started({k.decode(): v for k, v in fields.items() if k != b"k"})
            elif kind == b"end":
                ending = self._ending(fields)
            self._last_id = entry_id.decode()
            if ending is not None:
                break
        self._last_alive = time.monotonic()
        # Written after the log has the output: a daemon dying in between writes a
        # batch twice at worst, never loses one.
        last = self._last_id
        await self._call(lambda c: c.set(self.key("applied"), last, ex=keys.KEEP_S), pause=False)
        return ending

    def _started(self, fields: dict[str, Any]) -> None:
        run = {k: _text(v) for k, v in fields.items()}
        for name in ("pid", "pgid"):
            with contextlib.suppress(TypeError, ValueError):
                run[name] = int(run[name])
        self._run = run
        if self.phase is Phase.QUEUED:
            self._set_phase(Phase.STARTED)

    def _ending(self, fields: dict[bytes, bytes]) -> Ending:
        ex = Exit(_int(fields.get(b"code")), _int(fields.get(b"signal")))
        said = _text(fields.get(b"reason", b""))
        if self.reason is not None:
            return Ending(ex, self.reason)
        if said == "shutdown":  # the worker was stopped under it, not the task
            return Ending(ex, EndReason.LOST, f"{self._who()} shut down while it ran")
        return Ending(ex, None, f"{said} by the worker" if said else None)

    async def _check_alive(self) -> Ending | None:
        """A tick without output: the worker's heartbeat, or the job still waiting in
        RQ, keeps it alive; heartbeat_ttl_s of neither (Redis answering) loses it."""
        hb = await self._call(lambda c: c.get(self.key("hb")))
        if isinstance(hb, _Away):
            return None
        now = time.monotonic()
        if hb:
            self._heard(hb)
            self._last_alive = now
            return None
        job_key = self._ex.job_key(self.execution)
        status = await self._call(lambda c: c.hget(job_key, "status"))
        if isinstance(status, _Away):
            return None
        if status in WAITING_STATUSES:
            self._last_alive = now
            return None
        if now - self._last_alive < self._ex.cfg.heartbeat_ttl_s:
            return None
        # A worker heard from again must stop its child: the task is interrupted here.
        await self._call(lambda c: self._ex.push_stop(self.execution, "lost", c), pause=False)
        if self._run or status == b"started":
            detail = f"{self._who()} stopped heartbeating"
        else:
            state = _text(status) if status else "gone"
            detail = f"no worker heartbeat for {self._ex.cfg.heartbeat_ttl_s:g}s (RQ job {state})"
        return Ending(NO_EXIT, EndReason.LOST, detail)

    def _heard(self, hb: bytes | str) -> None:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            said = json.loads(hb)
            for name in ("worker", "host"):
                if said.get(name):
                    self._run.setdefault(name, said[name])

    def _who(self) -> str:
        return f"worker {self._run.get('worker', '?')} on {self._run.get('host', '?')}"

    # ---- Redis calls, retried while Redis is away ------------------------------------
    async def _call(
        self,
        fn: Callable[[aredis.Redis], Awaitable[T]],
        pause: bool = True,
        client: Callable[[], aredis.Redis] | None = None,
    ) -> T | _Away:
        try:
            result = await fn((client or self._ex.aio)())
        except (redis.RedisError, OSError, Unavailable) as exc:
            self._away(exc)
            if pause:
                await self._pause()
            return AWAY
        self._back()
        return result

    def _away(self, exc: BaseException) -> None:
        if self._away_since is None:
            self._away_since = time.monotonic()
            why = self._ex.target.describe(exc)
            self._ex.note(why)
            log.warning(
                "Redis does not answer; retrying", extra={"execution": self.execution, "error": why}
            )

    def _back(self) -> None:
        self._backoff = FIRST_BACKOFF_S
        if self._away_since is not None:
            # The lost clock stood still meanwhile: nobody heard anything.
            self._last_alive += time.monotonic() - self._away_since
            self._away_since = None
            self._ex.note(None)
            log.info("Redis answers again", extra={"execution": self.execution})

    async def _pause(self) -> None:
        """Back off (monotonic), waking early for a stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._backoff)
        self._backoff = min(MAX_BACKOFF_S, self._backoff * 2)


def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """XREAD's entries for one stream, whichever protocol (RESP2 list, RESP3 map)."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else (s[1] for s in reply)
    out: list[tuple[bytes, dict[bytes, bytes]]] = []
    for entries in streams:
        for item in entries:
            out.extend([(item[0], item[1])] if not isinstance(item[0], list) else item)
    return out


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # retrieved: a read dropped at the end has nobody to tell


def _id_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms or 0), int(seq or 0)


def _int(value: bytes | None) -> int | None:
    try:
        return int(value) if value not in (None, b"") else None
    except ValueError:
        return None


def _text(value: Any) -> Any:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
