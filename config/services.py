"""Config section `services`: long-running programs the daemon keeps alive.

Stdlib only: the CLI loads the config model. Each service is one `Service`; what
needs every service at once (names, dependencies that exist, no cycles) is checked by
`services_issues`, which `Config.validate` calls so its key paths start at `services`.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from typing import Any

from aiwgd.config.health import HealthCheck, Probe
from aiwgd.config.limits import Limits
from aiwgd.config.schema import regex, spec

NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
RESTART_POLICIES = ("always", "on-failure", "never")
CONDITIONS = ("started", "ready", "healthy", "completed")


def signal_number(name: str) -> int | None:
    """`TERM`, `SIGTERM` or `term` as a signal number; None if no such signal."""
    upper = name.upper()
    full = upper if upper.startswith("SIG") else "SIG" + upper
    try:
        return int(signal.Signals[full])
    except KeyError:
        return None


def _signal_name(value: str) -> str | None:
    if signal_number(value) is None:
        return 'is not a signal name (e.g. "TERM", "INT", "HUP", "QUIT")'
    return None


def _depends(value: Any) -> str | None:
    if isinstance(value, dict):
        bad = [c for c in value.values() if c not in CONDITIONS]
        if bad:
            return f"has an unknown condition {bad[0]!r} (must be one of {', '.join(CONDITIONS)})"
    return None


@dataclass
class Ready:
    """When a started instance counts as ready: exactly one of the three."""

    log_line: str | None = spec(None, check=regex, doc="a regex matched against each output line")
    probe: Probe | None = spec(None, doc="polled until it succeeds")
    after_s: float | None = spec(None, ge=0, le=86_400, doc="running this long")

    def validate(self) -> list[tuple[str, str]]:
        given = [k for k in ("log_line", "probe", "after_s") if getattr(self, k) is not None]
        if len(given) != 1:
            which = ", ".join(given) if given else "none"
            return [("", f"needs exactly one of log_line, probe or after_s (got {which})")]
        return []


@dataclass
class Backoff:
    """Delay before restart n: min(max_s, initial_s * multiplier^n) +- jitter."""

    initial_s: float = spec(1, ge=0, le=86_400)
    max_s: float = spec(60, ge=0, le=86_400)
    multiplier: float = spec(2, ge=1, le=100)
    jitter: float = spec(0.1, ge=0, le=1, doc="fraction of the delay, drawn each time")
    reset_after_s: float = spec(30, ge=0, le=86_400, doc="up this long: n starts again at 0")


@dataclass
class StartLimit:
    """More than `burst` starts within `interval_s`: the service gives up."""

    burst: int = spec(5, ge=1, le=10_000)
    interval_s: float = spec(300, gt=0, le=86_400)


@dataclass
class ServiceLog:
    max_size_mb: float = spec(10, gt=0, le=10_000, doc="rotate NAME.log at this size")
    max_files: int = spec(5, ge=1, le=100, doc="rotated files kept (NAME.log.1 .. .N)")


@dataclass
class Service:
    command: list[str] = spec(min_len=1, doc="argv, run without a shell; {instance} replaced")
    cwd: str | None = spec(None, doc="relative to the project root, inside it")
    env: dict[str, str] = spec(factory=dict)
    env_file: str | None = spec(None, doc="KEY=VALUE lines, relative to the project root")
    autostart: bool = True
    instances: int = spec(1, ge=1, le=256)
    depends_on: dict[str, str] | list[str] = spec(
        factory=dict, check=_depends, doc="{name: started|ready|healthy|completed}; a list = ready"
    )
    ready: Ready | None = spec(None, doc="default: running for 1 s")
    restart: str = spec("on-failure", choices=RESTART_POLICIES)
    success_exit_codes: list[int] = spec(factory=lambda: [0])
    backoff: Backoff = spec(factory=Backoff)
    start_limit: StartLimit = spec(factory=StartLimit)
    stop_signal: str = spec("TERM", check=_signal_name)
    stop_grace_s: float = spec(10, ge=0, le=3_600)
    health_check: HealthCheck | None = None
    limits: Limits | None = None
    log: ServiceLog = spec(factory=ServiceLog)
    restart_with_dependency: bool = False
    pid_file: str | None = spec(None, min_len=1, doc="for programs that daemonize")

    def validate(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.command and not self.command[0]:
            out.append(("command[0]", "must name a program"))
        for key, value in (
            ("cwd", self.cwd),
            ("env_file", self.env_file),
            ("pid_file", self.pid_file),
        ):
            if value is not None and (value.startswith("/") or ".." in value.split("/")):
                out.append((key, f"{value!r} must be a path inside the project root"))
        return out

    def dependencies(self) -> dict[str, str]:
        """depends_on as {name: condition} (a bare list means `ready`)."""
        if isinstance(self.depends_on, list):
            return dict.fromkeys(self.depends_on, "ready")
        return dict(self.depends_on)


def services_issues(services: dict[str, Service]) -> list[tuple[str, str]]:
    """What only the whole section shows: names, unknown dependencies, cycles."""
    out: list[tuple[str, str]] = []
    for name, svc in services.items():
        if not NAME.match(name):
            out.append((f"services.{name}", "a service name is letters, digits, _ . - (no ':')"))
        for dep in svc.dependencies():
            if dep not in services:
                out.append((f"services.{name}.depends_on.{dep}", f'unknown service "{dep}"'))
            elif dep == name:
                out.append((f"services.{name}.depends_on.{dep}", "a service cannot need itself"))
    cycle = find_cycle(
        {n: [d for d in s.dependencies() if d in services] for n, s in services.items()}
    )
    if cycle and len(cycle) > 2:
        out.append((f"services.{cycle[0]}.depends_on", "dependency cycle " + " -> ".join(cycle)))
    return out


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as [a, b, ..., a], or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = GREY
        stack.append(node)
        for nxt in graph.get(node, []):
            if color.get(nxt) == GREY:
                return [*stack[stack.index(nxt) :], nxt]
            if color.get(nxt) == WHITE:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        color[node] = BLACK
        return None

    for node in graph:
        if color[node] == WHITE:
            found = visit(node)
            if found:
                return found
    return None


def start_order(services: dict[str, Service]) -> list[str]:
    """Names with every dependency before its dependents (the config has no cycles)."""
    done: list[str] = []
    seen: set[str] = set()

    def add(name: str) -> None:
        if name in seen or name not in services:
            return
        seen.add(name)
        for dep in services[name].dependencies():
            add(dep)
        done.append(name)

    for name in services:
        add(name)
    return done
