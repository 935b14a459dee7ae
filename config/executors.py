"""Config section `executors`: where else a task's attempts may run than here.

`executors: {NAME: {type: "rq", url, queue, password_env, max_parallel, ...}}` names a
queue on a Redis (or Valkey) server that `aiwg worker` processes take attempts from
(aiwgd.remote). "local" (child processes of the daemon) is always there and is the
default; `tasks.default_executor`, `agent.executor` (prompt tasks), a group's
`executor` and task.submit `executor` choose another. Standard library only: the CLI
loads this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from aiwgd.config.schema import spec

LOCAL = "local"  # the daemon's own executor; never a key of `executors`
SCHEMES = ("redis", "rediss", "unix")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def default_queue(root: Path) -> str:
    """`aiwg-<project folder name>`: the same on every machine that has the project
    checked out under the same folder name (a worker's --root elsewhere has another
    path, so the path itself cannot be part of it)."""
    name = re.sub(r"[^a-z0-9]+", "-", root.name.lower()).strip("-")[:64].strip("-")
    return f"aiwg-{name or 'project'}"


def url_error(url: str) -> str | None:
    """Why `url` is no Redis address we can use, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in SCHEMES:
        return f"has scheme {parts.scheme or '(none)'!r}; use redis://, rediss:// or unix://"
    if parts.scheme == "unix":
        if not parts.path.startswith("/"):
            return "needs an absolute socket path: unix:///path/to/redis.sock"
        return None
    if not parts.hostname:
        return "names no host: redis://HOST[:PORT][/DB]"
    if port is not None and not 0 < port < 65536:
        return f"has port {port}, outside 1-65535"
    db = parts.path.strip("/")
    if db and not db.isdigit():
        return f"has database {db!r}; it must be a number (redis://host:6379/0)"
    if parts.password:
        return "holds a password; name an environment variable in password_env instead"
    return None


def shown_url(url: str) -> str:
    """`url` without its password, for messages, logs and status."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a URL that does not parse)"
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _queue(value: str) -> str | None:
    if not QUEUE.match(value):
        return "is not a queue name (letters, digits and _ . : -, up to 128)"
    return None


def _env_name(value: str) -> str | None:
    from aiwgd.config.model import env_name  # model imports this module

    return env_name(value)


@dataclass
class RqExecutorConfig:
    # Checked in validate(), which can show the URL without a password in it.
    url: str = spec(
        min_len=1,
        max_len=4096,
        doc="the Redis server: redis://HOST[:PORT][/DB], rediss://..., unix:///path/redis.sock",
    )
    type: str = spec("rq", choices=("rq",), doc="rq: attempts run by `aiwg worker` via RQ")
    queue: str = spec("", max_len=128, doc="RQ queue name (default: aiwg-<project folder>)")
    password_env: str | None = spec(
        None, check=_env_name, doc="environment variable holding the Redis password"
    )
    max_parallel: int = spec(
        8, ge=1, le=100_000, doc="attempts given to it at once (queued in Redis or running)"
    )
    heartbeat_ttl_s: float = spec(
        30, ge=1, le=3600, doc="a running attempt whose worker is silent this long is lost"
    )
    on_unreachable: str = spec(
        "error",
        choices=("error", "wait"),
        doc="Redis unreachable at submit: error (refused, nothing stored) or wait "
        "(accepted; the attempt waits for Redis)",
    )

    def validate(self) -> list[tuple[str, str]]:
        out = []
        if why := url_error(self.url):
            out.append(("url", f'"{shown_url(self.url)}" {why}'))
        if self.queue and (why := _queue(self.queue)):
            out.append(("queue", why))
        return out


def executors_issues(
    executors: dict[str, RqExecutorConfig], named: list[tuple[str, str | None]]
) -> list[tuple[str, str]]:
    """Bad executor names, and `named` references (key path, name) to none of them."""
    out = []
    for name in executors:
        if name == LOCAL:
            out.append((f"executors.{name}", '"local" is the daemon itself; choose another name'))
        elif not NAME.match(name):
            out.append((f"executors.{name}", "is not a name (letters, digits, _ . -; up to 64)"))
    known = [LOCAL, *executors]
    for path, ref in named:
        if ref is not None and ref not in known:
            out.append((path, f'unknown executor "{ref}" (configured: {", ".join(known)})'))
    return out
