"""One instance of a service: its run loop, from waiting on dependencies through spawn,
readiness, exit and backoff, to a stop.

The loop (`_run`) is the only writer of `state`, through `_move`, which checks the
one transition table (services.model). Requests from outside (stop, restart, an
unhealthy verdict, a dependency restart) only set a flag and poke the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiwgd.config import Config
from aiwgd.config.health import Probe
from aiwgd.config.services import Service, signal_number
from aiwgd.lifecycle import Lifecycle
from aiwgd.procs.child import Child, Exit
from aiwgd.procs.registry import ChildRegistry
from aiwgd.services.backoff import Pacer
from aiwgd.services.follow import follow_daemonized
from aiwgd.services.health import Health, HealthMonitor, probe
from aiwgd.services.logs import Feed, RotatingLog
from aiwgd.services.model import LIVE, HistoryEntry, State, check_move
from aiwgd.services.plan import mark, plan
from aiwgd.services.stopping import describe, kill, stop_child

log = logging.getLogger("aiwgd.services")

DEFAULT_READY_S = 1.0
PROBE_POLL_S = 0.2


class Host(Protocol):
    """What an instance needs from the service manager (never the daemon)."""

    config: Config
    root: Path
    children: ChildRegistry
    lifecycle: Lifecycle

    def publish(self, type: str, data: dict[str, Any]) -> None: ...
    def blocked_by(self, inst: Instance) -> str | None: ...
    def changed(self) -> Awaitable[None]: ...
    def notify(self, inst: Instance) -> None: ...
    def record(self, entry: HistoryEntry) -> None: ...
    def log_path(self, inst: Instance) -> str: ...


@dataclass
class Ended:
    exit: Exit | None  # None: it never started (spawn failed)
    reason: str
    stopped: bool  # we stopped it (stop or restart request)


class Instance:
    def __init__(self, host: Host, service: str, index: int, count: int, svc: Service) -> None:
        self.host = host
        self.service = service
        self.index = index
        self.name = service if count == 1 else f"{service}:{index}"
        self.svc = svc
        self.state = State.STOPPED
        self.reason = ""
        self.pid: int | None = None
        self.child: Child | None = None
        self.started_mono: float | None = None
        self.started_at: float | None = None
        self.starts = 0
        self.restarts = 0
        self.last_exit: dict[str, Any] | None = None
        self.pacer = Pacer(svc.backoff, svc.start_limit)
        mb = int(svc.log.max_size_mb * 1024 * 1024)
        self.log = RotatingLog(host.log_path(self), mb, svc.log.max_files)
        self.log.on_line = self._on_line
        self.health: HealthMonitor | None = None
        self.want = False
        self._poke = asyncio.Event()
        self._restart_reason: str | None = None  # stop, then start again at once
        self._kill_reason: str | None = None  # stop, then the restart policy decides
        self._task: asyncio.Task[None] | None = None
        self._gen = 0  # which spawn a timer or a probe belongs to
        self._ready_timer: asyncio.TimerHandle | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._ready_re = (
            re.compile(svc.ready.log_line) if svc.ready and svc.ready.log_line else None
        )

    # ---- requests from outside -------------------------------------------------------
    def start(self, by_hand: bool) -> None:
        if by_hand:
            self.pacer.reset()  # a start by hand lifts the start limit
        self.want = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)
        else:
            self._poke.set()  # cut a backoff wait short

    async def stop(self) -> None:
        self.want = False
        self._poke.set()
        if self._task is not None:
            await asyncio.shield(self._task)
        if self.health is not None:
            # A probe cut short is killed after its cancel: a stop (and the daemon's
            # shutdown) returns only once its processes are gone too.
            await self.health.wait_stopped()
        if self.state in (State.EXITED, State.GAVE_UP):
            # Stopped by hand: what it was is in last_exit and the history.
            self._move(State.STOPPED, "stopped")

    def restart(self, reason: str) -> None:
        """Stop the running process and start again at once (no backoff)."""
        if self.state in LIVE:
            self._restart_reason = reason
            self._poke.set()
        else:
            self.start(by_hand=True)

    def _over_limit(self, reason: str, detail: str) -> None:
        """The monitor found the instance over a limit: down the ladder, then policy."""
        if self.state in LIVE and self._kill_reason is None:
            self._kill_reason = f"limit: {detail}"
            self._poke.set()

    def send(self, sig: int) -> bool:
        if self.child is None or self.state not in LIVE:
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.child.pgid, sig)
            if self.pid is not None and self.pid != self.child.pid:
                os.kill(self.pid, sig)  # the process a daemonizing program left
        return True

    @property
    def live(self) -> bool:
        return self.state in LIVE

    # ---- the loop --------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while self.want:
                blocked = self.host.blocked_by(self)
                if blocked:
                    self._move(State.WAITING, blocked)
                    await self._wait(self.host.changed())
                    continue
                if not self.pacer.note_start():
                    lim = self.svc.start_limit
                    self._give_up(
                        f"start limit: more than {lim.burst} starts in {lim.interval_s:g}s"
                    )
                    return
                ended = await self._run_once()
                if self._stopping():  # asked while it ran (mypy keeps `want` narrowed)
                    break
                if ended.stopped:  # a restart asked for: at once, no backoff
                    self.restarts += 1
                    self.host.publish("service.restarting", self._data(reason=ended.reason))
                    continue
                if not self._should_restart(ended.exit):
                    self._move(State.EXITED, ended.reason)
                    self.want = False
                    return
                delay = self.pacer.next_delay()
                self.restarts += 1
                self._move(State.BACKOFF, f"{ended.reason}; restarting in {delay:.2f}s")
                self.host.publish(
                    "service.restarting", self._data(reason=ended.reason, delay_s=round(delay, 3))
                )
                self._poke.clear()
                await self._wait(asyncio.sleep(delay))
        except Exception:
            log.exception("service loop failed", extra={"service": self.name})
            self.state, self.reason = State.GAVE_UP, "internal error (see daemon.log)"
            self.host.notify(self)
            return
        if self.state not in (State.STOPPED, State.EXITED, State.GAVE_UP):
            self._move(State.STOPPED, "stopped")
            self.host.publish("service.stopped", self._data())

    async def _wait(self, what: Awaitable[Any]) -> None:
        """Wait for `what` or a poke (stop, restart, start by hand)."""
        fut = asyncio.ensure_future(what)
        poke = asyncio.ensure_future(self._poke.wait())
        try:
            await asyncio.wait({fut, poke}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            fut.cancel()
            poke.cancel()
        self._poke.clear()

    def _stopping(self) -> bool:
        return not self.want

    def _stop_asked(self) -> bool:
        return not self.want or self._restart_reason is not None or self._kill_reason is not None

    async def _until(self, fut: asyncio.Future[Any]) -> None:
        """Wait for `fut`, or for a stop or restart request (other pokes are ignored)."""
        while not fut.done() and not self._stop_asked():
            await self._wait(asyncio.shield(fut))

    def _should_restart(self, ex: Exit | None) -> bool:
        policy = self.svc.restart
        if policy == "always":
            return True
        if policy == "never":
            return False
        ok = ex is not None and ex.code is not None and ex.code in self.svc.success_exit_codes
        return not ok

    def _give_up(self, reason: str) -> None:
        self._move(State.GAVE_UP, reason)
        self.want = False
        self.host.publish("service.gave_up", self._data(reason=reason))
        self.log.note(f"gave up: {reason}")

    # ---- one process -----------------------------------------------------------------
    async def _run_once(self) -> Ended:
        self._move(State.STARTING, "")
        self._poke.clear()
        cfg, host = self.host.config, self.host
        try:
            p = plan(cfg, host.root, self.service, self.svc, self.index)
            child = await Child.spawn(
                p.argv, cwd=p.cwd, env=p.env, mark=mark(host.root, self.name), sink=Feed(self.log)
            )
        except (OSError, ValueError) as exc:
            reason = f"cannot start: {exc}"
            self.log.note(reason)
            host.record(HistoryEntry(time.time(), "spawn_failed", self.name, reason))
            self.last_exit = {"reason": reason, "time": time.time()}
            return Ended(None, reason, stopped=False)
        self.child, self.pid, self._gen = child, child.pid, self._gen + 1
        self.started_mono, self.started_at = time.monotonic(), time.time()
        self.starts += 1
        host.children.add(
            child, f"service:{self.name}", limits=self.svc.limits, on_over=self._over_limit
        )
        self.log.note(f"started pid {child.pid}: {' '.join(p.argv)}")
        host.record(HistoryEntry(time.time(), "started", self.name, pid=child.pid))
        self._move(State.RUNNING, "")
        host.publish("service.started", self._data())
        self._arm_ready(p.cwd, p.env)
        try:
            return await self._supervise(child)
        except BaseException:
            # A bug or a cancel must never leave the process running unwatched.
            await asyncio.shield(kill(child))
            raise
        finally:
            host.children.discard(child)
            self._disarm()
            self.child = None

    async def _supervise(self, child: Child) -> Ended:
        grace = self.svc.stop_grace_s
        fast = self.host.lifecycle.fast_stop
        await self._until(child.exited())
        stopped = child.returncode is None or self._stop_asked()
        if not stopped and child.returncode in self.svc.success_exit_codes:
            # A program that daemonized: its leader exited 0, what it forked runs on.
            followed = await follow_daemonized(self, child)
            if followed is not None:
                await self._until(followed)
                stopped = not followed.done()
                followed.cancel()
        restarting = self._restart_reason is not None and self.want
        reason = self._restart_reason or self._kill_reason or ("stopped" if not self.want else "")
        if stopped:
            self._move(State.STOPPING, reason)
            await self._stop_child(child, grace)
        result = await child.finish(grace, fast)
        uptime = time.monotonic() - (self.started_mono or time.monotonic())
        self.pacer.note_uptime(uptime)
        if not stopped:
            reason = describe(result)
        self._restart_reason = self._kill_reason = None
        self.last_exit = {
            "exit_code": result.code,
            "signal": result.signal,
            "reason": reason,
            "uptime_s": round(uptime, 3),
            "time": time.time(),
        }
        self.log.note(f"pid {child.pid} ended: {describe(result)} after {uptime:.1f}s")
        self.host.record(
            HistoryEntry(
                time.time(),
                "exited",
                self.name,
                reason,
                child.pid,
                result.code,
                result.signal,
                round(uptime, 3),
            )
        )
        self.host.publish(
            "service.exited",
            self._data(exit_code=result.code, signal=result.signal, reason=reason),
        )
        return Ended(result, reason, stopped=restarting)

    async def _stop_child(self, child: Child, grace: float) -> None:
        sig = signal_number(self.svc.stop_signal) or signal.SIGTERM
        fast = self.host.lifecycle.fast_stop
        await stop_child(child, sig, grace, fast, mark(self.host.root, self.name))

    # ---- readiness and health --------------------------------------------------------
    def _arm_ready(self, cwd: str, env: dict[str, str]) -> None:
        ready, gen = self.svc.ready, self._gen
        loop = asyncio.get_running_loop()
        if ready is None or ready.after_s is not None:
            delay = DEFAULT_READY_S if ready is None else float(ready.after_s or 0)
            self._ready_timer = loop.call_later(delay, self._mark_ready, gen, "running")
        elif ready.probe is not None:
            self._probe_task = loop.create_task(self._probe_ready(ready.probe, cwd, env, gen))
        check = self.svc.health_check
        if check is not None:
            if self.health is None:
                self.health = HealthMonitor(
                    check, name=self.name, cwd=cwd, env=env, on_change=self._health_changed
                )
            # The service's current check: `svc` may have been replaced since the last
            # start, and the monitor must not keep probing the old one.
            self.health.check, self.health.cwd, self.health.env = check, cwd, env
            self.health.start()

    def _disarm(self) -> None:
        if self._ready_timer is not None:
            self._ready_timer.cancel()
        if self._probe_task is not None:
            self._probe_task.cancel()
        if self.health is not None:
            self.health.stop()

    async def _probe_ready(self, p: Probe, cwd: str, env: dict[str, str], gen: int) -> None:
        while self._gen == gen and self.state == State.RUNNING:
            ok, _detail = await probe(p, cwd=cwd, env=env)
            if ok:
                self._mark_ready(gen, "probe succeeded")
                return
            await asyncio.sleep(PROBE_POLL_S)

    def _on_line(self, line: str) -> None:
        if (
            self._ready_re is not None
            and self.state == State.RUNNING
            and self._ready_re.search(line)
        ):
            self._mark_ready(self._gen, "log line matched")

    def _mark_ready(self, gen: int, why: str) -> None:
        if gen == self._gen and self.state == State.RUNNING:
            self._move(State.READY, why)
            self.host.publish("service.ready", self._data())

    def _health_changed(self, state: Health, detail: str) -> None:
        self.host.notify(self)
        if state != Health.UNHEALTHY:
            return
        self.host.publish("service.unhealthy", self._data(reason=detail))
        check = self.svc.health_check
        if check is not None and check.action == "restart" and self.want:
            self.restart(f"unhealthy: {detail}")

    @property
    def health_state(self) -> str:
        return str(self.health.state) if self.health is not None else "unknown"

    # ---- state -----------------------------------------------------------------------
    def _move(self, new: State, reason: str) -> None:
        check_move(self.state, new)
        changed = new != self.state or reason != self.reason
        self.state, self.reason = new, reason
        if new not in LIVE:
            self.pid = None
        if changed:
            self.host.notify(self)

    def _data(self, **extra: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "service": self.service, "pid": self.pid}
        data.update({k: v for k, v in extra.items() if v is not None})
        return data

    def uptime(self) -> float | None:
        if self.state in (State.RUNNING, State.READY) and self.started_mono is not None:
            return round(time.monotonic() - self.started_mono, 3)
        return None
