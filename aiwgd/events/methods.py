"""RPC methods of the event router: events.* and dlq.*.

Socket subscriptions (`events.subscribe`) are ordinary router subscribers whose handler
writes a notification to the connection. Each has its own bounded queue, so a client
that reads slowly only loses its own events (counted; it is told once with an
`events.dropped` notification), and every subscription ends when its connection does.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiwgd import errors
from aiwgd.config.schema import show, spec
from aiwgd.events.model import Event, matches
from aiwgd.events.results import (
    DlqList,
    EventList,
    Purged,
    Replayed,
    Subscribed,
    Unsubscribed,
)
from aiwgd.events.router import EventRouter, Subscription

if TYPE_CHECKING:
    from aiwgd.rpc.registry import Api

TYPE_RE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$")
GLOB_RE = re.compile(r"^[a-z0-9_.*?\[\]!-]+$")
MAX_SUBSCRIPTIONS_PER_CONNECTION = 64
# Types and globs are short words; a glob is compiled and cached (fnmatch keeps 32,768
# patterns), so a long one would cost memory long after the call.
MAX_TYPE_LEN = 200
# An event is a notice, kept in memory (events.history) and sent to every subscriber:
# bulk belongs in a file whose path the event carries.
MAX_EVENT_DATA_BYTES = 256 * 1024


def event_type(value: str) -> str | None:
    if len(value) > MAX_TYPE_LEN:
        return f"is too long ({len(value)} characters, at most {MAX_TYPE_LEN})"
    if TYPE_RE.match(value):
        return None
    return 'is not an event type (dotted lowercase words, e.g. "ci.finished")'


def type_glob(value: str) -> str | None:
    if len(value) > MAX_TYPE_LEN:
        return f"is too long ({len(value)} characters, at most {MAX_TYPE_LEN})"
    if GLOB_RE.match(value):
        return None
    return 'is not an event type pattern (lowercase, dots and glob characters, e.g. "task.*")'


@dataclass
class ListParams:
    type: str | None = spec(None, check=type_glob, doc="event type glob, e.g. task.*")
    source: str | None = spec(None, doc="only events from this source, e.g. watcher")
    since: str | float | None = spec(None, doc="an event id (events after it) or a Unix time")
    limit: int = spec(100, ge=1, le=100_000, doc="at most this many (the newest)")


@dataclass
class EmitParams:
    type: str = spec(check=event_type, doc='dotted lowercase words, e.g. "ci.finished"')
    data: dict[str, Any] = spec(factory=dict)

    def validate(self) -> list[tuple[str, str]]:
        # JSON may carry a lone surrogate ("\\ud800"); UTF-8 cannot, so the event could
        # be neither logged nor sent on as UTF-8. Refused here rather than acknowledged.
        try:
            size = len(json.dumps(self.data, ensure_ascii=False).encode())
        except UnicodeEncodeError:
            return list(_lone_surrogates(self.data, "data"))
        if size > MAX_EVENT_DATA_BYTES:
            why = f"is too large ({size} bytes as JSON, at most {MAX_EVENT_DATA_BYTES})"
            return [("data", f"{show(self.data)} {why}; put bulk in a file, send its path")]
        return []


def _lone_surrogates(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, message) for each string (or key) in `value` UTF-8 cannot encode."""
    stack = [(value, path)]
    while stack:  # no recursion: parsed JSON may be nested deeper than the stack
        item, where = stack.pop()
        if isinstance(item, str):
            bad = _surrogate(item)
            if bad:
                yield where, f"contains a lone surrogate ({bad}), which UTF-8 cannot encode; {FIX}"
        elif isinstance(item, dict):
            for key, sub in reversed(item.items()):
                bad = _surrogate(key)
                if bad:
                    yield where, f"key {key!a} contains a lone surrogate ({bad}); {FIX}"
                else:
                    stack.append((sub, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]") for i, sub in reversed(list(enumerate(item))))


FIX = "send text, or encode binary data (e.g. base64)"


def _surrogate(text: str) -> str | None:
    """The first lone surrogate in `text`, escaped for a message (e.g. \\ud800)."""
    bad = next((c for c in text if "\ud800" <= c <= "\udfff"), None)
    return None if bad is None else f"{bad!a}"[1:-1]


@dataclass
class SubscribeParams:
    types: list[str] = spec(min_len=1, max_len=64, doc='type globs, e.g. ["task.*", "file.*"]')

    def validate(self) -> list[tuple[str, str]]:
        out = []
        for i, pattern in enumerate(self.types):
            reason = type_glob(pattern) if isinstance(pattern, str) else "is not a string"
            if reason:
                out.append((f"types[{i}]", f"{pattern!r} {reason}"))
        return out


@dataclass
class UnsubscribeParams:
    subscription_id: str = spec(min_len=1)


@dataclass
class DlqListParams:
    subscriber: str | None = spec(None, doc="only entries of this subscriber")
    limit: int | None = spec(None, ge=1, le=1_000_000, doc="at most this many (the newest)")


@dataclass
class ReplayParams:
    id: str | None = spec(None, doc="the dead letter to re-deliver")
    all: bool = spec(False, doc="re-deliver every dead letter")

    def validate(self) -> list[tuple[str, str]]:
        if (self.id is None) == (not self.all):
            return [("", 'give exactly one of "id" or "all": true')]
        return []


@dataclass
class PurgeParams:
    id: str | None = spec(None, doc="drop only this entry (default: all)")


class SocketSubscriptions:
    """The socket subscriptions, by id, with the connection that owns each."""

    def __init__(self, router: EventRouter) -> None:
        self.router = router
        self.by_id: dict[str, tuple[Any, Subscription]] = {}
        self._ids = itertools.count(1)

    def add(self, conn: Any, types: list[str]) -> str:
        owned = sum(1 for c, _ in self.by_id.values() if c is conn)
        if owned >= MAX_SUBSCRIPTIONS_PER_CONNECTION:
            raise errors.LimitExceeded(
                f"Limit exceeded: a connection may hold {MAX_SUBSCRIPTIONS_PER_CONNECTION} "
                "subscriptions; unsubscribe one first"
            )
        sid = f"sub-{next(self._ids)}"
        told = False

        async def handler(event: Event) -> None:
            nonlocal told
            if sub.dropped and not told:
                told = True
                await conn.notify(
                    "events.dropped",
                    {
                        "subscription_id": sid,
                        "dropped": sub.dropped,
                        "message": "events were dropped: this connection read too slowly",
                    },
                )
            await conn.notify("event", event.to_dict())

        # Bounded by events.queue_size like every subscriber: a file burst publishes
        # thousands of events at once, and a client reading steadily must get them all.
        sub = self.router.subscribe(types, handler, f"rpc:{sid}", retries=False)
        self.by_id[sid] = (conn, sub)
        conn.on_close(lambda: self.remove(sid))
        return sid

    def remove(self, sid: str, conn: Any = None) -> bool:
        entry = self.by_id.get(sid)
        if entry is None or (conn is not None and entry[0] is not conn):
            return False
        del self.by_id[sid]
        self.router.unsubscribe(entry[1])
        return True


def select(history: list[Event], p: ListParams) -> list[Event]:
    """The events of `history` that events.list returns for `p` (oldest first)."""
    events = history
    if isinstance(p.since, str):
        for i, event in enumerate(events):
            if event.id == p.since:
                events = events[i + 1 :]
                break
        else:
            raise errors.NotFound(
                f"Not found: event {p.since!r} is not in the history (the last "
                f"{len(history)} events); pass a Unix time instead"
            )
    elif p.since is not None:
        events = [e for e in events if e.time > p.since]
    if p.type is not None:
        events = [e for e in events if matches((p.type,), e.type)]
    if p.source is not None:
        events = [e for e in events if e.source == p.source]
    return events[-p.limit :]


def register(api: Api, router: EventRouter) -> None:
    """events.list|emit|subscribe|unsubscribe and dlq.list|replay|purge."""
    subs = SocketSubscriptions(router)

    @api.method(
        "events.list",
        "Recent events, oldest first; filter by type glob, source, since (event id or Unix time).",
        ListParams,
        result=EventList,
        raises=(errors.NotFound,),
    )
    async def list_events(ctx: Any, p: ListParams) -> dict[str, Any]:
        found = select(list(router.history), p)
        return {"events": [e.to_dict() for e in found], "count": len(found)}

    @api.method(
        "events.emit", 'Publish an event (source "rpc"); returns it.', EmitParams, result=Event
    )
    async def emit(ctx: Any, p: EmitParams) -> dict[str, Any]:
        return router.publish(p.type, p.data, "rpc").to_dict()

    @api.method(
        "events.subscribe",
        'Receive matching events on this connection as "event" notifications until it closes.',
        SubscribeParams,
        result=Subscribed,
        raises=(errors.LimitExceeded,),
    )
    async def subscribe(ctx: Any, p: SubscribeParams) -> dict[str, Any]:
        return {"subscription_id": subs.add(ctx.conn, p.types), "types": p.types}

    @api.method(
        "events.unsubscribe",
        "End one of this connection's subscriptions.",
        UnsubscribeParams,
        result=Unsubscribed,
        raises=(errors.NotFound,),
    )
    async def unsubscribe(ctx: Any, p: UnsubscribeParams) -> dict[str, Any]:
        if not subs.remove(p.subscription_id, ctx.conn):
            raise errors.NotFound(
                f"Not found: {p.subscription_id!r} is not a subscription of this connection"
            )
        return {"unsubscribed": p.subscription_id}

    @api.method(
        "dlq.list",
        "Dead letters (events a subscriber failed on), oldest first.",
        DlqListParams,
        result=DlqList,
    )
    async def dlq_list(ctx: Any, p: DlqListParams) -> dict[str, Any]:
        entries = router.dlq.select(p.subscriber, p.limit)
        return {**router.dlq.status(), "entries": entries}

    @api.method(
        "dlq.replay",
        "Re-deliver dead letters to the subscriber that failed.",
        ReplayParams,
        result=Replayed,
        raises=(errors.NotFound,),
    )
    async def dlq_replay(ctx: Any, p: ReplayParams) -> dict[str, Any]:
        if p.id is not None and router.dlq.get(p.id) is None:
            raise errors.NotFound(f"Not found: no dead letter {p.id!r} (see dlq.list)")
        return await router.replay(None if p.all else [p.id] if p.id else [])

    @api.method(
        "dlq.purge",
        "Drop dead letters: one by id, or all.",
        PurgeParams,
        result=Purged,
        raises=(errors.NotFound,),
    )
    async def dlq_purge(ctx: Any, p: PurgeParams) -> dict[str, Any]:
        if p.id is not None and router.dlq.get(p.id) is None:
            raise errors.NotFound(f"Not found: no dead letter {p.id!r} (see dlq.list)")
        return {"purged": await router.dlq.purge(None if p.id is None else [p.id])}
