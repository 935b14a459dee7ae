"""The event: `{id, time, source, type, data}`, and how subscriptions match types."""

from __future__ import annotations

import fnmatch
import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Any

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
        # Shallow on purpose: callers serialise or read it, and asdict()'s deep copy of
        # `data` was a measurable share of a short task's cost (3+ events per task).
        return {
            "type": self.type,
            "data": self.data,
            "source": self.source,
            "id": self.id,
            "time": self.time,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        return cls(
            str(raw["type"]),
            dict(raw.get("data") or {}),
            str(raw.get("source", "")),
            str(raw["id"]),
            float(raw.get("time", 0.0)),
        )


def matches(patterns: tuple[str, ...], event_type: str) -> bool:
    return any(fnmatch.fnmatchcase(event_type, p) for p in patterns)
