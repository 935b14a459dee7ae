"""`aiwg service restart NAME|all`: each instance's moves as they happen, from the
daemon's service.* events, until it is ready or has failed (cli/progress.py draws
the wait; each instance's line is printed once it has settled).

The daemon publishes no event for some moves: "stopping" is seen when the stopped
process's exit is, "starting" with service.restarting, and where an exit leads (backoff,
gave_up, or exited for good) is asked. Every instance reaches "ready" (a service without
a readiness check after a second of running), so that is the end looked for; gave_up,
backoff, exited or stopped end it as a failure.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from aiwgd.cli.options import EXIT_ERROR, client, emit
from aiwgd.cli.progress import Progress
from aiwgd.cli.taskwait import next_event
from aiwgd.client import Client

EVENT_STATE = {
    "service.started": "running",
    "service.ready": "ready",
    "service.gave_up": "gave_up",
    "service.stopped": "stopped",
}
LIVE = frozenset({"starting", "running", "ready", "stopping"})
DONE = frozenset({"ready"})
FAILED = frozenset({"gave_up", "backoff", "stopped"})  # and "exited" once it stays so


class Moves:
    """One instance's states since the restart was asked."""

    def __init__(self, state: str) -> None:
        self.states = [state]
        # A live instance's next exit is the restart's stop: only what comes after it
        # can end the wait (a ready from the run being stopped must not).
        self.stopping = state in LIVE
        self.stays_exited = False  # the daemon said so after the exit (no restart follows)

    def move(self, state: str) -> None:
        if state != self.states[-1]:
            self.states.append(state)

    def see(self, type_: str, data: dict[str, Any]) -> None:
        if self.end() is not None:
            return  # settled (and printed): a later move is another story
        if type_ == "service.exited":
            self.move("stopping" if self.stopping else "exited")
            self.stopping = False
        elif type_ == "service.restarting":
            self.move("backoff" if data.get("delay_s") else "starting")
        elif type_ in EVENT_STATE:
            self.move(EVENT_STATE[type_])

    def end(self) -> str | None:
        """The state it settled in, or None while it moves."""
        last = self.states[-1]
        if self.stopping or len(self.states) == 1:
            return None
        return last if last in DONE | FAILED or self.stays_exited else None

    def line(self, name: str) -> str:
        return f"{name}: {' -> '.join(self.states)}"


def _resync(c: Client, moves: dict[str, Moves]) -> None:
    """After dropped events: each instance's state as the daemon has it now."""
    for s in c.call("service.list")["services"]:
        m = moves.get(s["name"])
        if m is not None and m.end() is None:
            m.move(str(s["state"]))


def _after_exit(c: Client, name: str, m: Moves) -> None:
    """What the policy made of an exit: the daemon moves the instance on (backoff,
    gave_up, exited for good) before it answers, and publishes no event for exited."""
    got = c.call("service.get", name=name)["instances"]
    state = str(got[0]["state"]) if got else "exited"
    if state == "exited":
        m.stays_exited = True
    elif state in FAILED:
        m.move(state)


def restart(root: str | None, name: str, as_json: bool, timeout: float) -> None:
    """Restart and follow; exit 1 unless every instance ended ready."""
    with client(root) as c, Progress.unless(as_json) as progress:
        c.call("events.subscribe", types=["service.*"])
        result = c.call("service.restart", name=name)
        moves = {i["name"]: Moves(str(i["state"])) for i in result["instances"]}
        deadline = time.monotonic() + timeout
        progress.step(f"restarting {', '.join(moves)}")
        while [m for m in moves.values() if m.end() is None]:
            left = deadline - time.monotonic()
            event = next_event(c, left) if left > 0 else None
            if event is None:
                if time.monotonic() >= deadline:
                    break
                _resync(c, moves)
                continue
            data = event.get("data") or {}
            inst = str(data.get("name"))
            m = moves.get(inst)
            if m is None or m.end() is not None:
                continue
            m.see(str(event.get("type")), data)
            if m.states[-1] == "exited":
                _after_exit(c, inst, m)
            settled = m.end()
            if settled is None:
                progress.step(m.line(inst))  # the instance that moved last
            elif not as_json:
                progress.echo(m.line(inst))
    late = [n for n, m in moves.items() if m.end() is None]
    failed = [n for n, m in moves.items() if m.end() is not None and m.end() not in DONE]
    if as_json:
        ok = not late and not failed
        out = {**result, "moves": {n: m.states for n, m in moves.items()}, "ok": ok}
        emit(out, True)
    else:
        for n in late:
            typer.echo(f"{moves[n].line(n)} (not ready after {timeout:g} s)")
    if late or failed:
        why = [f"{n} ({moves[n].end()})" for n in failed] + [f"{n} (not ready)" for n in late]
        if not as_json:
            typer.echo(f"aiwg: restart failed: {', '.join(why)}", err=True)
        raise typer.Exit(EXIT_ERROR)
