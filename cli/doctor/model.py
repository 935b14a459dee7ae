"""The shape of a doctor check and what every check may ask about the project.

A check is a function `Context -> Result`. The facts several checks share (the config,
whether a daemon holds the lock, whether it answers) are worked out once, on first use,
under a lock: the checks run in threads at the same time (cli/doctor/run.py).
"""

from __future__ import annotations

import os
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aiwgd.config.paths import Paths

if TYPE_CHECKING:
    from aiwgd.config import Config

# How long `ping` may take: a daemon that cannot answer in this is not answering.
PING_TIMEOUT_S = 1.0


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Result:
    """One check's verdict: what is wrong (or fine), and the one thing to do about it."""

    name: str
    status: Status
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "fix": self.fix,
        }


def ok(name: str, message: str) -> Result:
    return Result(name, Status.OK, message)


def warn(name: str, message: str, fix: str) -> Result:
    return Result(name, Status.WARN, message, fix)


def fail(name: str, message: str, fix: str) -> Result:
    return Result(name, Status.FAIL, message, fix)


def skip(name: str, message: str) -> Result:
    return Result(name, Status.SKIP, message)


def quote(*parts: object) -> str:
    """A shell command line a user can paste: every part quoted as needed."""
    return " ".join(shlex.quote(str(p)) for p in parts)


@dataclass(frozen=True)
class DaemonFacts:
    """Whether a daemon runs for this project, and whether it answers."""

    pid: int | None  # holder of the lock (-1: held, PID file unreadable); None: not running
    answered: bool
    error: str  # why it did not answer ("" when it did)
    ping_ms: float | None


class Context:
    """The project under examination; shared facts are computed once, thread-safely."""

    def __init__(self, paths: Paths, ping_timeout: float = PING_TIMEOUT_S) -> None:
        self.paths = paths
        self.ping_timeout = ping_timeout
        self.uid = os.getuid()
        self._lock = threading.Lock()

        self._facts: dict[str, Any] = {}

    def _once(self, compute: Callable[[], Any]) -> Any:
        """`compute()`'s value, computed by the first thread that asks (the others wait)."""
        with self._lock:
            key = compute.__name__
            if key not in self._facts:
                self._facts[key] = compute()
            return self._facts[key]

    @property
    def _loaded(self) -> tuple[Config | None, str, bool]:
        """(the config, or None if invalid; the error; whether the file exists)."""
        return self._once(self._load)  # type: ignore[no-any-return]

    def _load(self) -> tuple[Config | None, str, bool]:
        from aiwgd.config import ValidationError, defaults, load_file

        if not self.paths.config_file.exists():
            return defaults(), "", False  # the daemon writes these at its first start
        try:
            return load_file(self.paths.config_file), "", True
        except ValidationError as exc:
            return None, "; ".join(str(i) for i in exc.issues), True

    @property
    def config(self) -> Config | None:
        """The config the daemon would run with; None when the file is invalid."""
        return self._loaded[0]

    @property
    def config_error(self) -> str:
        return self._loaded[1]

    @property
    def config_exists(self) -> bool:
        return self._loaded[2]

    @property
    def daemon(self) -> DaemonFacts:
        return self._once(self._ping)  # type: ignore[no-any-return]

    def _ping(self) -> DaemonFacts:
        import time

        from aiwgd.cli.daemonctl import running_pid
        from aiwgd.client import Client, ClientError

        pid = running_pid(self.paths)
        start = time.monotonic()
        try:
            with Client(self.paths.root, timeout=self.ping_timeout) as c:
                answer = c.call("ping")
        except (ClientError, TimeoutError, OSError) as exc:
            return DaemonFacts(pid, False, str(exc) or type(exc).__name__, None)
        ms = (time.monotonic() - start) * 1000
        if answer != "pong":
            return DaemonFacts(pid, False, f"ping answered {answer!r}", ms)
        return DaemonFacts(pid, True, "", ms)


Check = Callable[[Context], Result]
