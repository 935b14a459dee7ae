"""A service's health: a probe repeated on an interval, judged into one state, and the
daemon's health score.

    monitor = HealthMonitor(check, name="web", cwd=root, env=env, on_change=changed)
    monitor.start()     # each time the service's instance (re)starts
    monitor.stop()      # when it stops or exits: probing ends, a probe in flight is killed

The state is UNKNOWN after each start. The first success makes it HEALTHY (and so does
one inside `start_period_s`, which also ends the start period); `failures` consecutive
failures after the start period make it UNHEALTHY; a success afterwards makes it
HEALTHY again. Failures inside the start period do not count: a program that is still
starting is not sick. `on_change(state, detail)` is called on transitions only, so the
service manager acts (restart, report) once per episode, not once per probe.

Like Docker's HEALTHCHECK, the first probe runs one interval after the start. Probes
are spaced on the monotonic clock from one probe's start to the next, never
overlapping: a probe slower than the interval is followed at once by the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from aiwgd.config.health import HealthCheck
from aiwgd.services.probes import probe

__all__ = ["Health", "HealthMonitor", "daemon_health", "health_score", "probe"]

log = logging.getLogger("aiwgd.services")

# The environment mark a command probe carries (with a per-run value), so anything it
# left outside its process group is found and stopped with it.
PROBE_MARK = "AIWG_HEALTH_PROBE"


class Health(StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class HealthMonitor:
    """Probes one service instance on its interval and tracks its health."""

    def __init__(
        self,
        check: HealthCheck,
        *,
        name: str,
        cwd: str,
        env: dict[str, str],
        on_change: Callable[[Health, str], None],
    ) -> None:
        self.check = check
        self.name = name
        self.cwd = cwd
        self.env = env
        self.on_change = on_change
        self.state = Health.UNKNOWN
        self.failures = 0  # consecutive, after the start period
        self.checks = 0  # probes run since this monitor was made
        self.failed_checks = 0
        self.last_detail = ""
        self.last_at: float | None = None  # Unix time of the last probe's end
        self._task: asyncio.Task[None] | None = None
        # Stopped loops still killing a probe's processes (see `wait_stopped`).
        self._stopping: set[asyncio.Task[None]] = set()

    # ---- control ---------------------------------------------------------------------
    def start(self) -> None:
        """An instance (re)started: UNKNOWN, the start period begins, probing resumes."""
        self.stop()
        self.state = Health.UNKNOWN
        self.failures = 0
        self._task = asyncio.get_running_loop().create_task(
            self._run(time.monotonic()), name=f"aiwgd-health-{self.name}"
        )

    def stop(self) -> None:
        """The instance is stopping or gone: end probing. A probe in flight is cancelled
        (its processes are killed right after; `wait_stopped` waits for that). The state
        goes back to UNKNOWN without a call to on_change: nothing is being judged."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
        self.state = Health.UNKNOWN
        self.failures = 0

    async def wait_stopped(self) -> None:
        """After stop(): return once every cancelled probe's processes are gone."""
        for task in list(self._stopping):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def status(self) -> dict[str, Any]:
        return {
            "state": str(self.state),
            "failures": self.failures,
            "last_detail": self.last_detail,
            "last_at": self.last_at,
            "checks": self.checks,
            "failed_checks": self.failed_checks,
        }

    # ---- the loop --------------------------------------------------------------------
    async def _run(self, started: float) -> None:
        check = self.check
        period_end = started + check.start_period_s
        next_at = started + check.interval_s
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            began = time.monotonic()
            mark = {PROBE_MARK: f"{self.name}:{secrets.token_hex(4)}"}
            ok, detail = await probe(check, cwd=self.cwd, env=self.env, mark=mark)
            if ok and began < period_end:
                period_end = began  # up once: the start period is over
            self._record(ok, detail, counts=began >= period_end)
            next_at = max(began + check.interval_s, time.monotonic())

    def _record(self, ok: bool, detail: str, counts: bool) -> None:
        self.checks += 1
        self.last_detail = detail
        self.last_at = time.time()
        if ok:
            self.failures = 0
            self._become(Health.HEALTHY, detail)
            return
        self.failed_checks += 1
        if not counts:
            return
        self.failures += 1
        if self.failures >= self.check.failures:
            self._become(Health.UNHEALTHY, detail)

    def _become(self, state: Health, detail: str) -> None:
        if state is self.state:
            return
        log.info(
            "service health changed",
            extra={"service": self.name, "state": str(state), "previous": str(self.state)},
        )
        self.state = state
        try:
            self.on_change(state, detail)
        except Exception:  # the manager's bug must not end this service's probing
            log.exception("health on_change failed", extra={"service": self.name})


# ---- the daemon's health score -------------------------------------------------------


def health_score(items: Mapping[str, bool]) -> dict[str, Any]:
    """`items`: name -> healthy. The score is the healthy share, 0-100, rounded down
    (100 only when everything is healthy); nothing to judge is 100."""
    unhealthy = sorted(name for name, ok in items.items() if not ok)
    if not items:
        return {"score": 100, "unhealthy": []}
    return {"score": (len(items) - len(unhealthy)) * 100 // len(items), "unhealthy": unhealthy}


_BAD_SUBSYSTEM_STATES = ("error", "failed")
_BAD_SERVICE_STATES = ("gave_up", "backoff")


def _services_of(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The services in the services subsystem's status, as a list or a name map."""
    found = status.get("services")
    if isinstance(found, Mapping):
        return [{"name": name, **s} for name, s in found.items() if isinstance(s, Mapping)]
    if isinstance(found, list):
        return [s for s in found if isinstance(s, Mapping)]
    return []


def _service_healthy(s: Mapping[str, Any]) -> bool:
    health = s.get("health")
    if isinstance(health, Mapping):
        health = health.get("state")
    return health != Health.UNHEALTHY and s.get("state") not in _BAD_SERVICE_STATES


def daemon_health(subsystems: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The health score of daemon.status from each subsystem's status(): a subsystem is
    unhealthy in state error/failed; a service ("service:NAME", from the services
    subsystem's `services`, when it has any) when its health is unhealthy or its state
    is gave_up/backoff. Disabled subsystems and services are left out."""
    items: dict[str, bool] = {}
    for name, status in subsystems.items():
        if not isinstance(status, Mapping) or status.get("state") == "disabled":
            continue
        items[name] = status.get("state") not in _BAD_SUBSYSTEM_STATES
        for s in _services_of(status):
            if s.get("enabled", True) is False or s.get("state") == "disabled":
                continue
            items[f"service:{s.get('name', '?')}"] = _service_healthy(s)
    return health_score(items)
