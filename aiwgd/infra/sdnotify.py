"""sd_notify(3) for `Type=notify` units: readiness, reloads, stops, status, watchdog.

    notifier = Notifier.from_env()          # reads (and unsets) NOTIFY_SOCKET, WATCHDOG_*
    notifier.start_watchdog()               # WATCHDOG=1 every WATCHDOG_USEC/2, from the loop
    notifier.ready(status_line)             # READY=1 (+ STATUS=), once the socket answers
    notifier.watch(router)                  # STATUS= again when task.* / service.* events say so
    notifier.reloading() ... notifier.ready_again()
    notifier.stopping() ... notifier.close()

Without NOTIFY_SOCKET every call is a no-op and nothing is scheduled: an idle daemon's
wakeups are a benchmarked target (issue 9), so status updates ride on events that
happen anyway and the heartbeat, and the watchdog task exists only when systemd asks.
The watchdog pings come from an asyncio task on the daemon's loop, never a thread: a
loop that hangs stops them, which is what the watchdog is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

log = logging.getLogger("aiwgd.sdnotify")

STATUS_EVERY_S = 1.0  # at most one STATUS= a second, however many events
STATUS_EVENTS = ("task.*", "service.*")  # the events that change the status line's counts


class Router(Protocol):
    """What watch() needs of the event router (aiwgd.events.router.EventRouter)."""

    def subscribe(
        self,
        patterns: list[str] | tuple[str, ...],
        handler: Callable[[Any], Awaitable[None]],
        name: str,
        maxsize: int | None = None,
        retries: bool = True,
    ) -> Any: ...


def status_line(tasks: dict[str, Any], services: dict[str, Any]) -> str:
    """`running N, queued M, services X/Y up` from the supervisor's and services' status."""
    states = [s.get("state") for s in services.get("services", {}).values()]
    up = sum(1 for s in states if s in ("running", "ready"))
    return (
        f"running {tasks.get('running', 0)}, queued {tasks.get('queued', 0)}, "
        f"services {up}/{len(states)} up"
    )


def _address(value: str) -> str | None:
    """The socket address NOTIFY_SOCKET names; an `@` name is in the abstract namespace."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock: and the like: not for a Unix daemon like this one


def _watchdog_seconds(env: MutableMapping[str, str], pid: int) -> float | None:
    usec, owner = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None  # meant for another process (ours is a child of the one it names)
    with contextlib.suppress(ValueError):
        if int(usec) > 0:
            return int(usec) / 1_000_000
    return None


class Notifier:
    def __init__(self, address: str | None, watchdog_s: float | None = None) -> None:
        self.address = address
        self.watchdog_s = watchdog_s if address else None
        self._sock: socket.socket | None = None
        if address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # A manager that stopped reading must never block the loop: drop the message.
            self._sock.setblocking(False)
        self._status: Callable[[], str] | None = None
        self._said = ""
        self._said_at = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._pinger: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls, env: MutableMapping[str, str] | None = None) -> Notifier:
        """Read the variables and unset them, as sd_notify's unset_environment does: the
        daemon's tasks and services must not speak to systemd for it."""
        env = os.environ if env is None else env
        value = env.pop("NOTIFY_SOCKET", "")
        watchdog_s = _watchdog_seconds(env, os.getpid())
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        address = _address(value) if value else None
        if value and address is None:
            log.warning("NOTIFY_SOCKET ignored: not a Unix socket path", extra={"value": value})
        return cls(address, watchdog_s)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> None:
        """One datagram of `KEY=value` lines; lost (never raised) if nobody listens."""
        if self._sock is None or self.address is None:
            return
        with contextlib.suppress(OSError):
            self._sock.sendto("\n".join(fields).encode(), self.address)

    # ---- the states systemd tracks ---------------------------------------------------
    def ready(self, status: Callable[[], str] | None = None) -> None:
        """READY=1 (the socket answers now); `status` builds the STATUS= line from then on."""
        self._status = status
        self.send("READY=1", f"MAINPID={os.getpid()}")
        self.status_changed()

    def reloading(self) -> None:
        # systemd matches the reload to this clock (Type=notify-reload needs it too).
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def ready_again(self) -> None:
        """After a reload, applied or refused: the daemon serves either way."""
        self.send("READY=1")
        self.status_changed()

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def close(self) -> None:
        """Cancel what was scheduled and close the socket (the end of shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pinger is not None:
            self._pinger.cancel()
            self._pinger = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # ---- STATUS= -----------------------------------------------------------------------
    def watch(self, router: Router) -> None:
        """Refresh the status line on the events that change its counts."""
        if self.enabled:
            router.subscribe(list(STATUS_EVENTS), self._on_event, "sdnotify", retries=False)

    async def _on_event(self, event: Any) -> None:
        self.status_changed()

    def status_changed(self) -> None:
        """Send STATUS= if it changed: now, or when a second has passed since the last."""
        if self._status is None or self._sock is None or self._timer is not None:
            return
        wait = self._said_at + STATUS_EVERY_S - time.monotonic()
        if wait > 0:
            # The trailing update: the counts the last event in a burst left are sent too.
            self._timer = asyncio.get_running_loop().call_later(wait, self._send_status)
            return
        self._send_status()

    def _send_status(self) -> None:
        self._timer = None
        if self._status is None:
            return
        try:
            line = self._status()
        except Exception:  # a status that cannot be built must not break what asked
            log.exception("cannot build the sd_notify status line")
            return
        if line != self._said:
            self._said, self._said_at = line, time.monotonic()
            self.send(f"STATUS={line}")

    # ---- WATCHDOG=1 --------------------------------------------------------------------
    def start_watchdog(self) -> None:
        """Ping every half watchdog period from a task on the running loop."""
        if self.watchdog_s is not None and self._pinger is None:
            self._pinger = asyncio.get_running_loop().create_task(
                self._ping(self.watchdog_s / 2), name="sdnotify-watchdog"
            )

    async def _ping(self, every_s: float) -> None:
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(every_s)
