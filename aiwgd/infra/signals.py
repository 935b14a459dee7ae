"""Signals that arrive before the event loop can handle them.

`aiwgd` installs these handlers on the first line of `main()`, before the heavy
imports, the lock, the config and the store: from then on a SIGHUP never kills the
daemon (the default action would) and a SIGTERM or SIGINT is never lost. The handlers
only remember what arrived; the daemon's loop takes over the same signals as soon as
it runs and replays what was remembered (`take()`): a stop request aborts start-up
cleanly, a reload request is applied once start-up is done. Stdlib only.
"""

from __future__ import annotations

import signal
from types import FrameType

__all__ = ["HANDLED", "PendingSignals"]

# What the daemon acts on: stop (graceful, twice = fast) and reload.
HANDLED: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class PendingSignals:
    """Remembers HANDLED signals in arrival order until the daemon takes them."""

    def __init__(self) -> None:
        self._received: list[signal.Signals] = []

    def install(self) -> PendingSignals:
        """Handle HANDLED signals from now on (main thread only)."""
        for sig in HANDLED:
            signal.signal(sig, self._remember)
        return self

    def _remember(self, signum: int, _frame: FrameType | None) -> None:
        # A signal handler: only record (appending to a list is safe here).
        self._received.append(signal.Signals(signum))

    def take(self) -> list[signal.Signals]:
        """What arrived since the last call, oldest first."""
        out, self._received = self._received, []
        return out
