"""The lost-worker clock of one remote attempt, seen from the daemon.

The attempt is alive while its worker heartbeats (`hb`), its output comes, or its RQ
job still waits for a worker; heartbeat_ttl_s of none of these, while Redis answers,
and its worker is lost. The clock stands still while Redis is away (nobody could be
heard then).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from aiwgd.remote.reading import text


class Liveness:
    def __init__(self, ttl: Callable[[], float]) -> None:
        self._ttl = ttl  # read each time: a reload may change it
        self._last = time.monotonic()

    def heard(self, hb: bytes | str | None = None, run: dict[str, Any] | None = None) -> None:
        """Something showed it alive; a heartbeat also names the worker and host."""
        self._last = time.monotonic()
        if hb and run is not None:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                said = json.loads(hb)
                for name in ("worker", "host"):
                    if said.get(name):
                        run.setdefault(name, said[name])

    def resume(self, away_s: float) -> None:
        """Redis was away this long: the clock did not run meanwhile."""
        self._last += away_s

    def expired(self) -> bool:
        return time.monotonic() - self._last >= self._ttl()


def who(run: dict[str, Any]) -> str:
    return f"worker {run.get('worker', '?')} on {run.get('host', '?')}"


def lost_detail(run: dict[str, Any], status: Any, ttl: float) -> str:
    """Why the attempt is lost: the worker that ran it went silent, or nobody ran it."""
    if run or status == b"started":
        return f"{who(run)} stopped heartbeating"
    state = text(status) if status else "gone"
    return f"no worker heartbeat for {ttl:g}s (RQ job {state})"
