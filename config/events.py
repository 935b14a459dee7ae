"""The `events` config section: the event router's retries, history and files."""

from __future__ import annotations

from dataclasses import dataclass

from aiwgd.config.schema import spec


@dataclass
class EventsSection:
    max_retries: int = spec(
        3, ge=0, le=20, doc="retries of a failing subscriber before the dead-letter queue"
    )
    retry_base_ms: int = spec(
        1000, ge=1, le=3_600_000, doc="first retry delay; doubles on each further retry"
    )
    history: int = spec(1000, ge=1, le=1_000_000, doc="events kept in memory for events.list")
    history_max_mb: float = spec(
        32, gt=0, le=1_048_576, doc="and at most about this much of their data; oldest go first"
    )
    dlq_max: int = spec(1000, ge=1, le=1_000_000, doc="dead letters kept; the oldest go first")
    log_max_mb: float = spec(
        10, gt=0, le=10_000, doc="rotate events.jsonl at this size (2 old files kept)"
    )
    queue_size: int = spec(
        10_000, ge=1, le=1_000_000, doc="per-subscriber queue bound; overflow is counted"
    )
