"""One remote attempt, run in RQ's work horse with the daemon's own local runner pieces.

`Horse.run()` (on an asyncio loop of the horse's own) checks the execution's `ctl`
list once before anything starts (a stop requested while the job waited in the queue:
it never starts), spawns the program with `aiwgd.procs.child.Child` (own session and
process group, the stop ladder, escaped descendants found by their marks), records
where it runs (`run` hash and a "start" entry), keeps a heartbeat (`hb`, a TTL key)
and blocks on `ctl` while the child runs; a stop request, or SIGTERM to the horse
(the worker's cold stop: reason "shutdown"), takes the child down the ladder. Its end
goes last into the `out` stream, published on the queue's `ends` channel, and the
horse returns only once that is written: Redis may be away meanwhile, and every write
is retried with a backoff (aiwgd.remote.streamsink) while the child runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aredis
from redis.exceptions import RedisError

from aiwgd.procs import reaper
from aiwgd.procs.child import Child, Exit
from aiwgd.remote import keys
from aiwgd.remote.streamsink import StreamSink, StreamWriter, end_fields, note

log = logging.getLogger("aiwgd.remote")

BACKOFF_MIN_S, BACKOFF_MAX_S = 0.05, 2.0
CONNECT_SLACK_S = 6.0  # past a tick, how long a Redis call may take (socket timeouts)
WAKE = "\x00ended"  # pushed to `ctl` by the horse itself to end its own BLPOP


@dataclass(frozen=True)
class Plan:
    """What to run, checked by the job function against the worker's own config."""

    execution: str
    queue: str
    argv: list[str]
    cwd: str
    env: dict[str, str]  # the child's, marks included
    mark: dict[str, str]
    grace_s: float
    tail_bytes: int
    heartbeat_ttl_s: float
    worker: str
    host: str


@dataclass(frozen=True)
class Result:
    code: int | None
    signal: int | None
    reason: str  # "" when the program ended on its own

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "signal": self.signal, "reason": self.reason}


async def refuse(client: aredis.Redis, queue: str, execution: str, why: str) -> Result:
    """End an execution that will not run here: a note saying why, then the end."""
    writer = StreamWriter(client, queue, execution)
    writer.start()
    writer.output(note(f"refused: {why}"))
    writer.entry("end", end_fields(None, None, "refused"))
    try:
        await writer.drain()
    finally:
        await writer.close()
    return Result(None, None, "refused")


class Horse:
    def __init__(self, client: aredis.Redis, plan: Plan) -> None:
        self.client = client
        self.plan = plan
        self.writer = StreamWriter(client, plan.queue, plan.execution)
        self.tick = max(0.05, plan.heartbeat_ttl_s / 3)
        self.shutdown = asyncio.Event()
        self.ended = False  # the end is queued: no heartbeat may follow its DEL of `hb`
        self._beat_now = asyncio.Event()  # cuts the heartbeat's wait short at the end
        self._delay = BACKOFF_MIN_S

    def key(self, kind: str) -> str:
        return keys.key(self.plan.queue, kind, self.plan.execution)

    async def run(self) -> Result:
        loop = asyncio.get_running_loop()
        # Orphans of the child (double forks) come to the horse, where the child's
        # leftover scan finds them by their marks, as in the daemon.
        reaper.become_subreaper()
        loop.add_signal_handler(signal.SIGCHLD, reaper.reap)
        loop.add_signal_handler(signal.SIGTERM, self.shutdown.set)
        self.writer.start()
        try:
            return await self._run()
        finally:
            await self.writer.close()
            loop.remove_signal_handler(signal.SIGTERM)
            loop.remove_signal_handler(signal.SIGCHLD)

    async def _run(self) -> Result:
        plan = self.plan
        early = await self._pop_early_stop()
        if early is not None:
            self.writer.output(note(f"stop requested before the start ({early}): not started"))
            return await self._end(Exit(None, None), early)
        sink = StreamSink(self.writer, plan.tail_bytes)
        try:
            child = await Child.spawn(
                plan.argv, cwd=plan.cwd, env=plan.env, mark=plan.mark, sink=sink
            )
        except OSError as exc:
            self.writer.output(note(f"refused: cannot start {plan.argv[0]!r}: {exc}"))
            return await self._end(Exit(None, None), "refused")
        self.writer.entry("start", self._run_fields(child))
        beats = asyncio.create_task(self._heartbeats())
        ctl = asyncio.create_task(self._watch_ctl())
        shut = asyncio.create_task(self.shutdown.wait())
        try:
            waits: set[asyncio.Future[Any]] = {child.exited(), ctl, shut}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            reason: str | None = None
            if not child.exited().done():
                reason = (ctl.result() if ctl.done() else None) or "shutdown"
                log.info(
                    "stopping the attempt",
                    extra={"execution": plan.execution, "reason": reason},
                )
                await child.terminate(plan.grace_s)
            ending = await child.finish(plan.grace_s)
            return await self._end(ending, reason)
        finally:
            shut.cancel()
            await self._settle(beats, ctl)

    async def _settle(self, beats: asyncio.Task[None], ctl: asyncio.Task[str | None]) -> None:
        """Let the heartbeat and the ctl reader end on their own: a redis.asyncio call
        cancelled in flight can leave the loop waiting on its connection for good (seen
        after a Redis restart), so neither is cancelled mid-command."""
        self.ended = True
        self._beat_now.set()
        if not ctl.done():
            with contextlib.suppress(RedisError, OSError):
                await self.client.rpush(self.key("ctl"), WAKE)  # BLPOP returns at once
        done, _ = await asyncio.wait({beats, ctl}, timeout=self.tick + CONNECT_SLACK_S)
        for task in (beats, ctl):
            if task not in done:  # a last resort: Redis away and no answer in time
                task.cancel()
        await asyncio.gather(beats, ctl, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            await self.client.lrem(self.key("ctl"), 0, WAKE)

    def _run_fields(self, child: Child) -> dict[str, object]:
        return {
            "k": "start",
            "worker": self.plan.worker,
            "host": self.plan.host,
            "pid": child.pid,
            "pgid": child.pgid,
            "create_time": child.create_time or "",
            "started": time.time(),
        }

    async def _end(self, ending: Exit, reason: str | None) -> Result:
        self.ended = True
        self.writer.entry("end", end_fields(ending.code, ending.signal, reason))
        await self.writer.drain()
        return Result(ending.code, ending.signal, reason or "")

    async def _retrying(self, what: str) -> None:
        """Sleep before the next try of a Redis call that failed (with a growing delay)."""
        log.debug("Redis call failed; retrying", extra={"what": what, "delay": self._delay})
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, BACKOFF_MAX_S, self.tick)

    async def _pop_early_stop(self) -> str | None:
        while True:
            try:
                raw = await self.client.lpop(self.key("ctl"))
            except (RedisError, OSError):
                await self._retrying("lpop ctl")
                continue
            return None if raw is None else _text(raw if isinstance(raw, bytes | str) else raw[0])

    async def _heartbeats(self) -> None:
        value = json.dumps(
            {"worker": self.plan.worker, "host": self.plan.host, "horse": os.getpid()}
        )
        ttl_ms = max(1, int(self.plan.heartbeat_ttl_s * 1000))
        while not self.ended:
            with contextlib.suppress(RedisError, OSError):
                await self.client.set(self.key("hb"), value, px=ttl_ms)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._beat_now.wait(), self.tick)

    async def _watch_ctl(self) -> str | None:
        """The first stop request the daemon pushes while the child runs (None: the
        attempt ended first)."""
        while not self.ended:
            try:
                item = await self.client.blpop([self.key("ctl")], timeout=self.tick)
            except (RedisError, OSError):
                await self._retrying("blpop ctl")
                continue
            self._delay = BACKOFF_MIN_S
            if item is not None:
                raw = item[1]
                reason = _text(raw if isinstance(raw, bytes | str) else str(raw))
                if reason != WAKE:
                    return reason
        return None


def _text(raw: bytes | str) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else raw
