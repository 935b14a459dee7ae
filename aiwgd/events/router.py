"""The event router: every subsystem publishes here; subscribers match with globs.

Public API (stable; other subsystems rely on it):

    event = router.publish(type, data, source)      # sync, never blocks, returns the Event
    sub = router.subscribe(patterns, handler, name, maxsize=None, retries=True, accept=None)
    router.unsubscribe(sub)
    router.deliver(sub, event)                       # queue one event for one subscriber

- `patterns` are globs over event types (`task.*`, `file.*`, `*`); an empty list makes a
  subscription that receives only what `deliver()` hands it (a named retry target: e.g.
  one webhook action, so its failures are retried and dead-lettered on their own).
- `handler` is `async def handler(event: Event) -> None`. Delivery is asynchronous:
  each subscriber has its own queue (bounded by `maxsize`, default `events.queue_size`)
  drained by its own task, so a slow or failing subscriber never blocks a publisher
  or anyone else. What overflows is counted (`dropped` in status) and logged.
- `accept(event) -> bool`, if given, is asked at publish for each event the patterns
  match; False and the event is not queued (`filtered` in status). It runs on the
  publisher's path, so it must be quick and must not raise.
- `retries=True` (the default): a handler that raises is retried after
  `events.retry_base_ms`, doubling each time, up to `events.max_retries` times. The
  retry is scheduled on a timer, so the subscriber goes on with its other events
  meanwhile (order is therefore not kept for a retried event). After the last failure
  the event, the subscriber's name and the error go to the dead-letter queue
  (`.aiwg/daemon/dlq.jsonl`); `dlq.replay` hands the event again to the live
  subscriber with the same `name`, so give retrying subscribers stable names.
  `retries=False`: a failure is counted and logged only (socket subscriptions).
- Every event is kept in the in-memory history (the newest `events.history`, within
  `events.history_max_mb`; see aiwgd.events.history) and appended to
  `.aiwg/daemon/events.jsonl` (size-rotated), which also refills the history at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiwgd.config.events import EventsSection
from aiwgd.events.dlq import DeadLetters
from aiwgd.events.eventlog import EventLog
from aiwgd.events.history import History, data_json, weight
from aiwgd.events.model import Event, matches
from aiwgd.lifecycle import Subsystem

if TYPE_CHECKING:
    from aiwgd.config import Config, Paths

log = logging.getLogger("aiwgd.events")

EventHandler = Callable[[Event], Awaitable[None]]


@dataclass
class Delivery:
    """One event on its way to one subscriber; `attempt` counts from 1."""

    event: Event
    attempt: int = 1
    replay_of: str | None = None


class Subscription:
    def __init__(
        self,
        name: str,
        patterns: tuple[str, ...],
        handler: EventHandler,
        maxsize: int,
        retries: bool = True,
        accept: Callable[[Event], bool] | None = None,
    ) -> None:
        self.name = name
        self.patterns = patterns
        self.handler = handler
        self.maxsize = maxsize
        self.retries = retries
        # Asked at publish, after the patterns match: False and the event is not queued
        # (counted as `filtered`), so a subscriber with nothing to do is never woken.
        self.accept = accept
        self.filtered = 0
        # Unbounded underneath: publish() enforces `maxsize`, while retries and replays
        # always get back in (they were accepted once and must not vanish).
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self.delivered = 0
        self.dropped = 0
        self.failed = 0
        self.retried = 0
        self.dead_lettered = 0
        self.pending_retries: dict[asyncio.TimerHandle, tuple[Delivery, str]] = {}
        self.task: asyncio.Task[None] | None = None
        self.active = True
        self._match_cache: dict[str, bool] = {}

    def set_patterns(self, patterns: list[str] | tuple[str, ...]) -> None:
        """Change what this subscriber hears from the next publish on."""
        self.patterns = tuple(patterns)
        self._match_cache = {}

    def wants(self, event_type: str) -> bool:
        # Event types repeat a lot; cache the glob verdict (bounded: types are few).
        hit = self._match_cache.get(event_type)
        if hit is None:
            hit = matches(self.patterns, event_type)
            if len(self._match_cache) < 4096:
                self._match_cache[event_type] = hit
        return hit

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "patterns": list(self.patterns),
            "queued": self.queue.qsize(),
            "delivered": self.delivered,
            "filtered": self.filtered,
            "dropped": self.dropped,
            "failed": self.failed,
            "retried": self.retried,
            "retrying": len(self.pending_retries),
            "dead_lettered": self.dead_lettered,
        }


class EventRouter(Subsystem):
    name = "events"

    def __init__(self, history: int = 1000, queue_size: int = 10_000) -> None:
        # configure() replaces these with the config's settings before start().
        self.settings = EventsSection(history=history, queue_size=queue_size)
        self.history = History(self.settings.history, _history_bytes(self.settings))
        self.subscriptions: list[Subscription] = []
        self.published = 0
        self.dlq = DeadLetters(None, self.settings.dlq_max)
        self.log: EventLog | None = None

    @property
    def queue_size(self) -> int:
        return self.settings.queue_size

    def configure(self, paths: Paths | None, settings: EventsSection) -> None:
        """Set files and limits before start(); without paths nothing is persisted."""
        self.settings = settings
        self.history.resize(settings.history, _history_bytes(settings))
        if paths is not None:
            self.dlq = DeadLetters(paths.dlq_file, settings.dlq_max)
            self.log = EventLog(paths.events_file, int(settings.log_max_mb * 1024 * 1024))

    # ---- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        self.dlq.load()
        await self.dlq.start()
        if self.log is not None:
            for event in self.log.tail(self.settings.history):
                self.history.append(event)
            await self.log.start()

    async def stop(self, fast: bool = False) -> None:
        for sub in list(self.subscriptions):
            self.unsubscribe(sub)
        if self.log is not None:
            await self.log.stop()
        await self.dlq.stop()

    async def apply_config(self, config: Config) -> None:
        new = config.events
        old, self.settings = self.settings, new
        self.history.resize(new.history, _history_bytes(new))
        for sub in self.subscriptions:
            if sub.maxsize == old.queue_size:  # followed the default: keep following it
                sub.maxsize = new.queue_size
        self.dlq.resize(new.dlq_max)
        if self.log is not None:
            self.log.max_bytes = int(new.log_max_mb * 1024 * 1024)

    def status(self) -> dict[str, Any]:
        return {
            "state": "running",
            "published": self.published,
            "history": len(self.history),
            "history_bytes": self.history.bytes,
            "subscribers": [s.status() for s in self.subscriptions],
            "dlq": self.dlq.status(),
            "log": self.log.status() if self.log is not None else None,
        }

    # ---- publishing ----------------------------------------------------------------
    def publish(
        self, type: str, data: dict[str, Any] | None = None, source: str = "daemon"
    ) -> Event:
        """Record an event and queue it for every matching subscriber; never blocks."""
        event = Event(type, data or {}, source)
        self.published += 1
        text = data_json(event)  # encoded once: the history's weight, the log's line
        self.history.append(event, weight(event, text))
        if self.log is not None:
            self.log.add(event, text)
        for sub in self.subscriptions:
            if sub.wants(type):
                if sub.accept is not None and not sub.accept(event):
                    sub.filtered += 1
                    continue
                self._offer(sub, Delivery(event))
        return event

    def deliver(self, sub: Subscription, event: Event) -> bool:
        """Queue `event` for one subscriber (bounded like publish); False if dropped."""
        return self._offer(sub, Delivery(event))

    def _offer(self, sub: Subscription, delivery: Delivery) -> bool:
        if sub.queue.qsize() >= sub.maxsize:
            sub.dropped += 1
            if sub.dropped == 1 or sub.dropped % 1000 == 0:
                fields = {"subscriber": sub.name, "dropped": sub.dropped}
                log.warning("subscriber queue full; events dropped", extra=fields)
            return False
        sub.queue.put_nowait(delivery)
        return True

    # ---- subscribers ---------------------------------------------------------------
    def subscribe(
        self,
        patterns: list[str] | tuple[str, ...],
        handler: EventHandler,
        name: str,
        maxsize: int | None = None,
        retries: bool = True,
        accept: Callable[[Event], bool] | None = None,
    ) -> Subscription:
        """Queue each published event matching `patterns` (and `accept`, if given)."""
        sub = Subscription(
            name, tuple(patterns), handler, maxsize or self.queue_size, retries, accept
        )
        self.subscriptions.append(sub)
        sub.task = asyncio.create_task(self._drain(sub), name=f"sub:{name}")
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop a subscriber; events waiting for a retry are dead-lettered, not lost."""
        sub.active = False
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)
        for handle, (delivery, error) in list(sub.pending_retries.items()):
            handle.cancel()
            self._dead_letter(sub, delivery, f"{error} (subscriber stopped before a retry)")
        sub.pending_retries.clear()
        if sub.retries:
            # Accepted but never handled: keep them replayable rather than drop them.
            while not sub.queue.empty():
                delivery = sub.queue.get_nowait()
                self._dead_letter(sub, delivery, "not delivered: the subscriber stopped")
        if sub.task is not None:
            sub.task.cancel()

    def find(self, name: str) -> Subscription | None:
        """The live subscription called `name` (the newest, if several)."""
        for sub in reversed(self.subscriptions):
            if sub.name == name:
                return sub
        return None

    async def _drain(self, sub: Subscription) -> None:
        handled = 0
        while True:
            if handled % 64 == 63:
                # Neither Queue.get() on a non-empty queue nor a quick handler yields:
                # without this, draining a 10,000-event burst would hold the loop
                # (and every RPC reply) for the whole burst.
                await asyncio.sleep(0)
            handled += 1
            delivery = await sub.queue.get()
            try:
                await sub.handler(delivery.event)
                sub.delivered += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(sub, delivery, exc)

    def _failed(self, sub: Subscription, delivery: Delivery, exc: Exception) -> None:
        sub.failed += 1
        error = f"{type(exc).__name__}: {exc}"
        fields = {
            "subscriber": sub.name,
            "event_id": delivery.event.id,
            "attempt": delivery.attempt,
            "error": error,
        }
        if not sub.retries:
            log.warning("event handler failed", extra=fields)
            return
        if delivery.attempt > self.settings.max_retries:
            log.error("event handler failed for the last time; dead-lettered", extra=fields)
            self._dead_letter(sub, delivery, error)
            return
        delay = self.settings.retry_base_ms * 2 ** (delivery.attempt - 1) / 1000
        log.warning("event handler failed; will retry", extra={**fields, "retry_in_s": delay})
        nxt = Delivery(delivery.event, delivery.attempt + 1, delivery.replay_of)
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            sub.pending_retries.pop(handle, None)
            if sub.active:
                sub.retried += 1
                sub.queue.put_nowait(nxt)

        handle = loop.call_later(delay, fire)
        sub.pending_retries[handle] = (nxt, error)

    def _dead_letter(self, sub: Subscription, delivery: Delivery, error: str) -> None:
        sub.dead_lettered += 1
        self.dlq.add(
            delivery.event.to_dict(), sub.name, error, delivery.attempt, delivery.replay_of
        )

    # ---- dead letters --------------------------------------------------------------
    async def replay(self, ids: list[str] | None) -> dict[str, Any]:
        """Hand dead letters (all if `ids` is None) back to their subscribers by name."""
        entries = self.dlq.entries if ids is None else [self.dlq.get(i) for i in ids]
        replayed: list[str] = []
        skipped: list[dict[str, str]] = []
        for entry in entries:
            if entry is None:
                continue
            sub = self.find(entry["subscriber"])
            if sub is None:
                skipped.append(
                    {
                        "id": entry["id"],
                        "subscriber": entry["subscriber"],
                        "reason": "no subscriber with this name is running",
                    }
                )
                continue
            # Replays bypass the queue bound: the event was accepted once already.
            sub.queue.put_nowait(Delivery(Event.from_dict(entry["event"]), 1, entry["id"]))
            replayed.append(entry["id"])
        await self.dlq.remove(replayed)
        return {"replayed": replayed, "skipped": skipped}


def _history_bytes(settings: EventsSection) -> int:
    return int(settings.history_max_mb * 1_048_576)
