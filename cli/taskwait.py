"""`aiwg task submit|run --wait`: wait for a task's end, showing its state, the time
waited and, while it is queued, its place in the queue (cli/progress.py draws it).

Driven by the daemon's task.* events on the waiting connection (subscribed before the
first task.get, so no change falls between the two), with a task.get now and then in
case one was dropped. The place in the queue is the daemon's (task.get's
queue_position), asked for again at most every PLACE_EVERY_S while things move.
"""

from __future__ import annotations

import time
from typing import Any

from aiwgd.cli.options import client
from aiwgd.cli.progress import Progress
from aiwgd.cli.taskqueue import ENDS
from aiwgd.client import Client

RESYNC_S = 5.0  # a dropped event delays the news by at most this long
PLACE_EVERY_S = 0.5  # the queue is listed again at most this often


def place_text(task: dict[str, Any]) -> str:
    """Where a queued task stands (task.get's queue_position), e.g. "place 2 of 5 in
    the queue", or what it waits for."""
    now = time.time()
    due = max((task.get(k) or 0 for k in ("start_at", "retry_at")), default=0)
    if due > now:
        return f"not before {time.strftime('%H:%M:%S', time.localtime(due))}"
    if task.get("after"):
        return f"after {', '.join(task['after'])}"
    pos = task.get("queue_position")
    if not pos:
        return ""
    return f"place {pos['place']} of {pos['of']} in the queue"


def next_event(c: Client, timeout: float) -> dict[str, Any] | None:
    """The next task event; None at the timeout or when the daemon dropped some."""
    deadline = time.monotonic() + timeout
    while True:
        if c.pending_notifications:
            msg = c.pending_notifications.pop(0)
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                msg = c.read_message(timeout=left)
            except TimeoutError:
                return None
        if not isinstance(msg, dict) or "id" in msg:
            continue
        if msg.get("method") == "events.dropped":
            return None
        if msg.get("method") == "event":
            params: dict[str, Any] = msg.get("params") or {}
            return params


def wait(root: str | None, task: dict[str, Any], show: bool) -> dict[str, Any]:
    """The task once it has ended (task.get's record); its steps on stderr if `show`.

    `task` is what task.submit answered; its "task ID STATE" line is printed already."""
    tid = task["id"]
    shown = f"task {tid} {task['state']}"
    with client(root, timeout=None) as c, Progress.unless(not show, shown=shown) as progress:
        c.call("events.subscribe", types=["task.*"])
        current: dict[str, Any] = c.call("task.get", id=tid)
        place, placed_at, stale = "", 0.0, True

        def detail() -> str:  # asked by the spinner's thread: reads, never calls
            return f" ({place})" if place else ""

        while current["state"] not in ENDS:
            queued = show and current["state"] == "queued"
            since = time.monotonic() - placed_at
            if queued and stale and since >= PLACE_EVERY_S:
                current = c.call("task.get", id=tid)  # with its queue_position
                place = place_text(current)
                placed_at, stale = time.monotonic(), False
            elif not queued:
                place = ""
            progress.step(f"task {tid} {current['state']}", detail)
            timeout = RESYNC_S
            if queued and stale:
                timeout = max(PLACE_EVERY_S - since, 0.01)
            event = next_event(c, timeout)
            if event is None:  # a quiet while or a dropped event: ask
                current = c.call("task.get", id=tid)
                continue
            data = event.get("data") or {}
            if data.get("id") == tid:
                current = {**current, **data}
            stale = True  # a task started, ended or came: the place may have changed
        final: dict[str, Any] = c.call("task.get", id=tid)
    return final
