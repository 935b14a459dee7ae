"""Which subsystems the daemon runs, in start order (stopped in reverse).

Kept apart from daemon.py so adding a subsystem touches only this list and the
subsystem's own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiwgd.base import Subsystem

if TYPE_CHECKING:
    from aiwgd.daemon import Daemon


def build_subsystems(daemon: Daemon) -> list[Subsystem]:
    """Everything after the event router, in start order; registers RPC methods too."""
    assert daemon.rpc is not None
    return [daemon.rpc]
