"""The router's history: the newest events, bounded by count and by size.

A count alone let 1,000 events of 900 KB each hold most of a gigabyte. Each event is
weighed once, as it comes in (its data as JSON text, plus the rest of the record), and
the oldest go first until both bounds hold; the newest is always kept. The router
encodes the data once (`data_json`) and hands the same text to the event log, which
builds its line from it instead of encoding the event a second time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from aiwgd.events.model import Event
from aiwgd.infra.jsonline import dumps, try_orjson

# The Event object, its id, type and source strings and the deque slot, besides data.
EVENT_OVERHEAD = 300
EMPTY_JSON = b"{}"


def data_json(event: Event) -> bytes | None:
    """The event's data as orjson encodes it (json_line's first choice), for the event
    log to splice into its line; None if orjson cannot (json_line then encodes the
    whole event its other way) or it is not JSON at all."""
    if not event.data:
        return EMPTY_JSON
    return try_orjson(event.data, default=str)


def weight(event: Event, text: bytes | None = None) -> int:
    """Roughly the memory an event holds, in bytes (of its data's JSON).

    `text` is the data's JSON when the caller has it (see data_json); an event whose
    data is not JSON counts as the record alone.
    """
    if not event.data:
        return EVENT_OVERHEAD
    if text is None:
        try:
            text = dumps(event.data, default=str)
        except (TypeError, ValueError, RecursionError, RuntimeError):
            return EVENT_OVERHEAD
    return EVENT_OVERHEAD + len(text)


class History:
    """A deque of the newest events (iterable, indexable) with a size bound too."""

    def __init__(self, maxlen: int, max_bytes: int) -> None:
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        self.bytes = 0
        self.trimmed = 0  # events let go for either bound
        self._events: deque[tuple[Event, int]] = deque()

    def append(self, event: Event, size: int | None = None) -> None:
        """Keep `event`; `size` is its weight() when the caller has worked it out."""
        if size is None:
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
