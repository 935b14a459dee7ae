"""What the events.* and dlq.* methods answer, as types (published by rpc.discover).

An event is answered as `Event.to_dict()` builds it, so its schema is generated from
the `Event` dataclass itself.
"""

from __future__ import annotations

from typing import Annotated, NotRequired, TypedDict

from aiwgd.events.model import Event


class EventList(TypedDict):
    events: Annotated[list[Event], "oldest first"]
    count: int


class Subscribed(TypedDict):
    subscription_id: str
    types: list[str]


class Unsubscribed(TypedDict):
    unsubscribed: str


class DeadLetter(TypedDict):
    """An event a subscriber failed on for the last time."""

    id: str
    event: Event
    subscriber: str
    error: str
    attempts: int
    time: float
    replay_of: NotRequired[Annotated[str, "the dead letter this one is a replay of"]]


class DlqList(TypedDict):
    count: int
    max: Annotated[int, "events.dlq_max"]
    evicted: Annotated[int, "dropped (oldest first) to stay within max"]
    write_errors: int
    last_error: Annotated[str | None, "why the last write failed; null once one succeeds"]
    entries: Annotated[list[DeadLetter], "oldest first"]


class NotReplayed(TypedDict):
    id: str
    subscriber: str
    reason: str


class Replayed(TypedDict):
    replayed: list[str]
    skipped: list[NotReplayed]


class Purged(TypedDict):
    purged: int
