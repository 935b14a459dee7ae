"""The router's history: the newest events, bounded by count and by size.

A count alone let 1,000 events of 900 KB each hold most of a gigabyte. Each event is
weighed once, as it comes in (its data as compact JSON text, plus the rest of the
record), and the oldest go first until both bounds hold; the newest is always kept.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator

from aiwgd.events.model import Event

# The Event object, its id, type and source strings and the deque slot, besides data.
EVENT_OVERHEAD = 300
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def weight(event: Event) -> int:
    """Roughly the memory an event holds, in bytes (characters of its data's JSON)."""
    if not event.data:
        return EVENT_OVERHEAD
    try:
        return EVENT_OVERHEAD + len(_ENCODER.encode(event.data))
    except (TypeError, ValueError, RecursionError):  # not JSON at all: count the record
        return EVENT_OVERHEAD


class History:
    """A deque of the newest events (iterable, indexable) with a size bound too."""

    def __init__(self, maxlen: int, max_bytes: int) -> None:
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        self.bytes = 0
        self.trimmed = 0  # events let go for either bound
        self._events: deque[tuple[Event, int]] = deque()

    def append(self, event: Event) -> None:
        size = weight(event)
        self._events.append((event, size))
        self.bytes += size
        self._trim()

    def resize(self, maxlen: int, max_bytes: int) -> None:
        self.maxlen, self.max_bytes = maxlen, max_bytes
        self._trim()

    def clear(self) -> None:
        self._events.clear()
        self.bytes = 0

    def _trim(self) -> None:
        events = self._events
        while len(events) > self.maxlen or (self.bytes > self.max_bytes and len(events) > 1):
            _, size = events.popleft()
            self.bytes -= size
            self.trimmed += 1

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return (event for event, _ in self._events)

    def __getitem__(self, index: int) -> Event:
        return self._events[index][0]
