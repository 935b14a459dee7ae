"""The event router: every subsystem publishes here; subscribers match with globs.

Publishing never blocks: each subscriber has its own bounded queue drained by its own
task, so a slow or failing subscriber cannot hold up a publisher or anyone else. What
overflows a queue is counted and reported in status, never dropped silently.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiwgd.base import Subsystem

log = logging.getLogger("aiwgd.events")

_seq = itertools.count(1)
_PREFIX = f"{int(time.time()):x}-{os.getpid():x}"


def new_event_id() -> str:
    # Unique across restarts (time + pid prefix) and ordered within one run.
    return f"ev-{_PREFIX}-{next(_seq)}"


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any]
    source: str
    id: str = field(default_factory=new_event_id)
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


EventHandler = Callable[[Event], Awaitable[None]]


def matches(patterns: tuple[str, ...], event_type: str) -> bool:
    return any(fnmatch.fnmatchcase(event_type, p) for p in patterns)


class Subscription:
    def __init__(
        self, name: str, patterns: tuple[str, ...], handler: EventHandler, maxsize: int
    ) -> None:
        self.name = name
        self.patterns = patterns
        self.handler = handler
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.delivered = 0
        self.dropped = 0
        self.failed = 0
        self.task: asyncio.Task[None] | None = None

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "patterns": list(self.patterns),
            "queued": self.queue.qsize(),
            "delivered": self.delivered,
            "dropped": self.dropped,
            "failed": self.failed,
        }


class EventRouter(Subsystem):
    name = "events"

    def __init__(self, history: int = 1000, queue_size: int = 10_000) -> None:
        self.history: deque[Event] = deque(maxlen=history)
        self.queue_size = queue_size
        self.subscriptions: list[Subscription] = []
        self.published = 0

    def publish(
        self, type: str, data: dict[str, Any] | None = None, source: str = "daemon"
    ) -> Event:
        """Record an event and queue it for every matching subscriber; never blocks."""
        event = Event(type, data or {}, source)
        self.published += 1
        self.history.append(event)
        for sub in self.subscriptions:
            if matches(sub.patterns, type):
                try:
                    sub.queue.put_nowait(event)
                except asyncio.QueueFull:
                    sub.dropped += 1
                    if sub.dropped == 1 or sub.dropped % 1000 == 0:
                        fields = {"subscriber": sub.name, "dropped": sub.dropped}
                        log.warning("subscriber queue full; events dropped", extra=fields)
        return event

    def subscribe(
        self, patterns: list[str] | tuple[str, ...], handler: EventHandler, name: str,
        maxsize: int | None = None,
    ) -> Subscription:  # fmt: skip
        sub = Subscription(name, tuple(patterns), handler, maxsize or self.queue_size)
        self.subscriptions.append(sub)
        sub.task = asyncio.create_task(self._drain(sub), name=f"sub:{name}")
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)
        if sub.task is not None:
            sub.task.cancel()

    async def _drain(self, sub: Subscription) -> None:
        while True:
            event = await sub.queue.get()
            try:
                await sub.handler(event)
                sub.delivered += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                sub.failed += 1
                log.exception("event handler failed",
                              extra={"subscriber": sub.name, "event_id": event.id})  # fmt: skip

    async def stop(self, fast: bool = False) -> None:
        for sub in list(self.subscriptions):
            self.unsubscribe(sub)

    def status(self) -> dict[str, Any]:
        return {
            "state": "running",
            "published": self.published,
            "subscribers": [s.status() for s in self.subscriptions],
        }
