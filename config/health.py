"""A service's `health_check` (and the `ready: {probe: ...}` condition): what to probe
and how often. Stdlib only: the CLI loads the config model.

Exactly one of `command` (argv, run without a shell), `http` (a URL on this machine,
healthy when it answers `status`) or `tcp` ("HOST:PORT" that accepts a connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from aiwgd.config.schema import spec

HEALTH_ACTIONS = ("restart", "report")


def _http_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http:// or https:// URL with a host"
    return None


def _host_port(addr: str) -> str | None:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return 'is not "HOST:PORT" with a port from 1 to 65535'
    return None


@dataclass
class Probe:
    """One probe: exactly one of command, http, tcp."""

    command: list[str] | None = spec(None, min_len=1, doc="argv; healthy when it exits 0")
    http: str | None = spec(None, check=_http_url, doc="URL; healthy when it answers `status`")
    status: int = spec(200, ge=100, le=599, doc="the HTTP status that means healthy")
    tcp: str | None = spec(None, check=_host_port, doc='"HOST:PORT" that accepts a connection')
    timeout_s: float = spec(2, gt=0, le=3600, doc="a probe still running then has failed")

    def validate(self) -> list[tuple[str, str]]:
        given = [k for k in ("command", "http", "tcp") if getattr(self, k) is not None]
        if len(given) != 1:
            which = ", ".join(given) if given else "none"
            return [("", f"needs exactly one of command, http or tcp (got {which})")]
        if self.command is not None and not self.command[0]:
            return [("command[0]", "must name a program")]
        return []


@dataclass
class HealthCheck(Probe):
    """A probe repeated every `interval_s`; `failures` in a row make it unhealthy."""

    interval_s: float = spec(10, gt=0, le=86_400, doc="time between probes")
    start_period_s: float = spec(0, ge=0, le=86_400, doc="failures after a start don't count")
    failures: int = spec(3, ge=1, le=1000, doc="consecutive failures before the action")
    action: str = spec(
        "restart", choices=HEALTH_ACTIONS, doc="what an unhealthy service gets: restart or report"
    )
