"""What `aiwg top` knows about the daemon: built from one snapshot, then kept current by
events and output notifications (no Textual here: cli/top/panes.py draws it).

Tasks are the task.list summaries, replaced whole by each task.* event (its data is the
same summary). Services are service.list's briefs; a service.* event carries only the
instance, its pid and a reason, so the state it implies is set here (EVENT_STATE) and
the figures no event carries (CPU, memory, health turning good) come from the slow
refresh.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

ACTIVE = ("running", "queued", "interrupted")
RECENT_ENDED = 5  # ended tasks kept on screen, newest first, so an outcome is seen
EVENTS_KEPT = 50
LINE_CAP = 500  # characters of an unfinished output line kept (a progress bar, a blob)

# The instance state each service event means (services/instance.py publishes them).
EVENT_STATE: dict[str, str] = {
    "service.started": "running",
    "service.ready": "ready",
    "service.exited": "exited",
    "service.restarting": "backoff",
    "service.gave_up": "gave_up",
    "service.stopped": "stopped",
}


@dataclass
class Output:
    """The last line a task printed, from its task.output chunks."""

    last: str = ""
    partial: str = ""

    def add(self, data: str) -> None:
        lines = (self.partial + data).split("\n")
        self.partial = lines.pop()[-LINE_CAP:]
        for line in reversed(lines):
            text = _visible(line)
            if text:
                self.last = text[:LINE_CAP]
                break

    def shown(self) -> str:
        return _visible(self.partial) or self.last


def _visible(line: str) -> str:
    """What a terminal would show of a line a progress bar rewrote with \r."""
    return next((p.strip() for p in reversed(line.split("\r")) if p.strip()), "")


@dataclass
class TopState:
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    output: dict[str, Output] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=EVENTS_KEPT))
    stats: dict[str, Any] = field(default_factory=dict)  # task.stats: cap, groups
    system: dict[str, Any] = field(default_factory=dict)  # monitor.system
    daemon: dict[str, Any] = field(default_factory=dict)  # daemon.status
    connected: bool = False
    down_reason: str = ""

    def reset(self) -> None:
        """Forget everything: a new connection starts from a new snapshot."""
        self.tasks.clear()
        self.output.clear()
        self.services.clear()
        self.events.clear()
        self.stats, self.system, self.daemon = {}, {}, {}

    # -- snapshot --------------------------------------------------------------------
    def load_tasks(self, summaries: list[dict[str, Any]]) -> None:
        for t in summaries:
            self.tasks[t["id"]] = t
        self._prune()

    def load_services(self, briefs: list[dict[str, Any]]) -> None:
        seen = {b["name"] for b in briefs}
        for name in list(self.services):
            if name not in seen:
                del self.services[name]  # removed by a reload
        for b in briefs:
            self.services[b["name"]] = dict(b)

    # -- live updates ----------------------------------------------------------------
    def apply_event(self, event: dict[str, Any]) -> None:
        self.events.appendleft(event)
        kind, data = str(event.get("type", "")), event.get("data") or {}
        if kind.startswith("task."):
            self.apply_task_event(event)
        elif kind.startswith("service.") and isinstance(data.get("name"), str):
            self._apply_service(kind, data)

    def apply_task_event(self, event: dict[str, Any]) -> None:
        """The task as a task.* event carries it (its whole summary)."""
        data = event.get("data") or {}
        if isinstance(data.get("id"), str):
            old = self.tasks.get(data["id"], {})
            task = {k: v for k, v in data.items() if k != "previous"}
            task.setdefault("paused", old.get("paused", False))
            if task.get("state") != "running":
                task["paused"] = False
            self.tasks[data["id"]] = task
            self._prune()

    def _apply_service(self, kind: str, data: dict[str, Any]) -> None:
        inst = self.services.setdefault(
            data["name"],
            {"name": data["name"], "service": data.get("service"), "restarts": 0},
        )
        if kind in EVENT_STATE:
            inst["state"] = EVENT_STATE[kind]
            inst["pid"] = data.get("pid") if kind in ("service.started", "service.ready") else None
        if kind == "service.restarting":
            inst["restarts"] = int(inst.get("restarts") or 0) + 1
        if kind == "service.unhealthy":
            inst["health"] = "unhealthy"
        if inst.get("pid") is None:
            inst["cpu_percent"] = inst["rss_bytes"] = None

    def add_output(self, task_id: str, data: str) -> None:
        self.output.setdefault(task_id, Output()).add(data)

    def set_paused(self, task_id: str, paused: bool) -> None:
        if task_id in self.tasks:
            self.tasks[task_id]["paused"] = paused

    def _prune(self) -> None:
        ended = [t for t in self.tasks.values() if t.get("state") not in ACTIVE]
        ended.sort(key=lambda t: t.get("finished_at") or t.get("created_at") or 0, reverse=True)
        for t in ended[RECENT_ENDED:]:
            del self.tasks[t["id"]]
            self.output.pop(t["id"], None)

    # -- what the panes show ---------------------------------------------------------
    def visible_tasks(self) -> list[dict[str, Any]]:
        """Running first, then queued (oldest first), then the recently ended."""
        order = {"running": 0, "interrupted": 1, "queued": 2}

        def key(t: dict[str, Any]) -> tuple[int, float]:
            rank = order.get(str(t.get("state")), 3)
            stamp = float(t.get("created_at") or 0)
            if rank == 3:
                stamp = -float(t.get("finished_at") or stamp)
            return rank, stamp

        return sorted(self.tasks.values(), key=key)

    def counts(self) -> tuple[int, int]:
        """(running, queued) as the events left them."""
        states = [t.get("state") for t in self.tasks.values()]
        return states.count("running"), states.count("queued")


def elapsed(task: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds the task has run (to its end if it ended); None if it never started."""
    start = task.get("started_at")
    if not isinstance(start, int | float):
        return None
    end = task.get("finished_at")
    stop = end if isinstance(end, int | float) else (now if now is not None else time.time())
    return max(0.0, stop - start)
