"""What `aiwg start` and `aiwg stop` say they wait for (cli/progress.py draws it).

Both are read from outside the daemon, without touching its lock (a shared flock held
for an instant could make a starting daemon's exclusive one fail): start-up from its
log, the stop from one `daemon.status` asked before `daemon.stop`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from aiwgd.cli.daemonctl import running_pid
from aiwgd.config.paths import Paths

PLAIN_AFTER_S = 1.0  # on a pipe, start/stop steps quicker than this leave no line
DEFAULT_GRACE_S = 10.0  # config/model.py's daemon.stop_grace_seconds
LIVE_SERVICE = frozenset({"starting", "running", "ready", "stopping"})


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class StartSteps:
    """A detached start-up's step, from the daemon's log: its first record
    ("starting", with its PID) comes once the config is loaded and valid.

    Make it before the daemon is spawned: only what is logged after counts."""

    def __init__(self, paths: Paths) -> None:
        self.log = paths.log_file
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        self.pid: int | None = None

    def __call__(self) -> str:
        if self.pid is None:
            self.pid = self._logged_pid()
        if self.pid is None:
            return "starting daemon: launching, loading config"
        return f"starting daemon (PID {self.pid}): starting subsystems, waiting for the socket"

    def _logged_pid(self) -> int | None:
        try:
            with self.log.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read(65536)
        except OSError:
            return None
        # Whole lines only: the rest is read again next time.
        self.offset += data.rfind(b"\n") + 1
        for line in data.splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict) and rec.get("msg") == "starting":
                    return int(rec.get("pid") or 0) or -1
        return None


def _running(status: dict[str, Any]) -> tuple[int, int]:
    """(running tasks, live service instances) from a daemon.status result."""
    subs = status.get("subsystems") or {}
    tasks = int((subs.get("supervisor") or {}).get("running") or 0)  # the task subsystem
    services = (subs.get("services") or {}).get("services") or {}
    live = sum(1 for s in services.values() if s.get("state") in LIVE_SERVICE)
    return tasks, live


def _grace_s(paths: Paths) -> float:
    """The config's stop grace, read as plain JSON: only shown, and validating the file
    (leftovers.grace_s) would cost `aiwg stop` a third of its time."""
    try:
        daemon = json.loads(paths.config_file.read_text()).get("daemon") or {}
        return float(daemon.get("stop_grace_seconds", DEFAULT_GRACE_S))
    except (OSError, ValueError, TypeError, AttributeError):
        return DEFAULT_GRACE_S


def stop_steps(paths: Paths, fast: bool, answer_s: float) -> Callable[[], str]:
    """The stop's step as time passes, from what runs now (one quick status call)."""
    from aiwgd.client import Client, ClientError

    if running_pid(paths) is None:
        return lambda: "aiwgd is not running: stopping what it left, if anything"
    try:
        with Client(paths.root, timeout=answer_s) as c:
            tasks, services = _running(c.call("daemon.status"))
    except (ClientError, TimeoutError, OSError):
        return lambda: "stopping: waiting for the daemon to exit"
    grace = 0.0 if fast else _grace_s(paths)
    t0 = time.monotonic()
    what = " and ".join(
        plural(n, word) for n, word in ((tasks, "task"), (services, "service")) if n
    )
    them = ("it" if tasks == 1 else "them") if not services else ("the task" + "s" * (tasks > 1))

    def step() -> str:
        waited = time.monotonic() - t0
        if fast and what:
            return f"stopping (fast): {what} running, stopping them now"
        if tasks and waited < grace:
            return f"stopping: {what} running, waiting for {them} (grace {grace:g} s)"
        if services and not tasks:
            return f"stopping: {what} running, stopping {'it' if services == 1 else 'them'}"
        if what and waited < 2 * grace:
            # The drain is over: what still runs gets SIGTERM, then SIGKILL after the grace.
            return f"stopping: {what} (SIGTERM, then SIGKILL after {grace:g} s)"
        return "stopping: waiting for the process to exit"

    return step
