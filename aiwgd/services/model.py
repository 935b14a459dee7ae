"""A service instance's states and the one table of moves between them.

stopped -> waiting -> starting -> running -> ready
running/ready -> exited (done, by policy) | backoff (to start again) | stopping
backoff -> starting | gave_up (start limit) | stopped
stopping -> stopped;   exited/gave_up/stopped -> waiting (started again)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class State(StrEnum):
    STOPPED = "stopped"
    WAITING = "waiting"
    STARTING = "starting"
    RUNNING = "running"
    READY = "ready"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    EXITED = "exited"
    GAVE_UP = "gave_up"


S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.STOPPED: frozenset({S.WAITING, S.STARTING}),
    S.WAITING: frozenset({S.STARTING, S.STOPPED, S.GAVE_UP}),
    # A spawn that fails (no such program) goes to backoff or gives up at once.
    S.STARTING: frozenset({S.RUNNING, S.BACKOFF, S.GAVE_UP, S.STOPPED, S.EXITED}),
    # -> stopped: it exited on its own just as a stop was asked for.
    S.RUNNING: frozenset({S.READY, S.STOPPING, S.BACKOFF, S.EXITED, S.GAVE_UP, S.STOPPED}),
    S.READY: frozenset({S.STOPPING, S.BACKOFF, S.EXITED, S.GAVE_UP, S.STOPPED}),
    S.BACKOFF: frozenset({S.STARTING, S.STOPPED, S.GAVE_UP, S.WAITING}),
    # A restart: stopped, then at once waiting or starting again; a stop for a limit:
    # then the restart policy (backoff, exited, gave_up).
    S.STOPPING: frozenset({S.STOPPED, S.WAITING, S.STARTING, S.BACKOFF, S.EXITED, S.GAVE_UP}),
    S.EXITED: frozenset({S.WAITING, S.STARTING, S.STOPPED}),
    S.GAVE_UP: frozenset({S.WAITING, S.STARTING, S.STOPPED}),
}
# States in which a process of the instance may be alive.
LIVE = frozenset({S.STARTING, S.RUNNING, S.READY, S.STOPPING})


class BadTransition(RuntimeError):
    pass


def check_move(old: State, new: State) -> None:
    if new != old and new not in TRANSITIONS[old]:
        raise BadTransition(f"{old} -> {new} is not a service transition")


@dataclass
class HistoryEntry:
    """One start or exit of an instance, kept (last 100) in services.json."""

    time: float
    event: str  # "started" | "exited" | "spawn_failed" | "stopped" | "recovered"
    instance: str
    reason: str = ""
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    uptime_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HistoryEntry | None:
        try:
            return cls(
                time=float(data["time"]),
                event=str(data["event"]),
                instance=str(data.get("instance", "")),
                reason=str(data.get("reason", "")),
                pid=data.get("pid"),
                exit_code=data.get("exit_code"),
                signal=data.get("signal"),
                uptime_s=data.get("uptime_s"),
            )
        except (KeyError, TypeError, ValueError):
            return None
