"""What every subsystem shares with the daemon: its start/stop/reload shape and the
stop signals it may watch. Subsystems get a `Lifecycle`, never the daemon itself."""

from __future__ import annotations

import asyncio
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from aiwgd.config import Config


@dataclass
class Lifecycle:
    """The daemon's stop requests, as the subsystems see them."""

    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # The second stop signal: skip every grace period, go down the ladder at once.
    fast_stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def drain(self, jobs: Collection[asyncio.Future[Any]], grace: float) -> None:
        """Let `jobs` finish for up to `grace` seconds (monotonic); a fast stop cuts the
        wait short. Returns early once all are done; never cancels them."""
        pending = {j for j in jobs if not j.done()}
        if not pending or self.fast_stop.is_set():
            return
        fast = asyncio.ensure_future(self.fast_stop.wait())
        deadline = time.monotonic() + grace
        try:
            while pending and not fast.done() and (left := deadline - time.monotonic()) > 0:
                await asyncio.wait({*pending, fast}, timeout=left, return_when=FIRST_COMPLETED)
                pending = {j for j in pending if not j.done()}
        finally:
            fast.cancel()


class Subsystem:
    """Started in order, stopped in reverse; reload hands each its new config."""

    name = "subsystem"

    async def start(self) -> None:
        """Begin work. Raise to refuse start-up with a precise message."""

    async def stop(self, fast: bool = False) -> None:
        """Finish or abandon work; `fast` means the second stop signal arrived."""

    async def apply_config(self, config: Config) -> None:
        """Take a new, already validated config; never lose running work."""

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot for daemon.status and state.json."""
        return {"state": "running"}
