"""The shape every subsystem shares, so the daemon can start, stop and reload them."""

from __future__ import annotations

from typing import Any

from aiwgd.config import Config


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
