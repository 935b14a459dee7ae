"""What every subsystem shares with the daemon: its start/stop/reload shape and the
stop signals it may watch. Subsystems get a `Lifecycle`, never the daemon itself."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiwgd.config import Config


@dataclass
class Lifecycle:
    """The daemon's stop requests, as the subsystems see them."""

    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # The second stop signal: skip every grace period, go down the ladder at once.
    fast_stop: asyncio.Event = field(default_factory=asyncio.Event)


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
