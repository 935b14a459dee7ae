"""Say a recurring thing at most once per interval, with how often it happened since.

A refused connection or a full disk can happen thousands of times a second; the log
gets one line per interval that counts them, not one line each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Due:
    count: int  # occurrences since the last line, this one included
    since_s: float | None  # seconds since the last line; None for the first


class Throttle:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._count = 0
        self._said_at: float | None = None

    def hit(self) -> Due | None:
        """Count one occurrence; a Due when a line is due now, else None."""
        self._count += 1
        now, last = time.monotonic(), self._said_at
        if last is not None and now - last < self.interval_s:
            return None
        due = Due(self._count, None if last is None else round(now - last, 1))
        self._count, self._said_at = 0, now
        return due
