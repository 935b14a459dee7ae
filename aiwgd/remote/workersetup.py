"""`aiwg worker`'s start: the options checked and completed (root, its config, the
queue, the password by env name, Redis answering, a free worker name), or one line
saying why it will not start (exit 2); and a forked process dying with its parent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Worker, worker_registration

from aiwgd.config.executors import default_queue, shown_url, url_error
from aiwgd.config.schema import ValidationError
from aiwgd.procs import marks
from aiwgd.remote import jobrun
from aiwgd.remote.connect import auth_error

EXIT_REFUSED = 2
CHECK_TIMEOUT_S = 5.0
PR_SET_PDEATHSIG = 1


class StartError(Exception):
    """Why the worker will not start: one line, exit 2."""


@dataclass(frozen=True)
class Options:
    url: str
    queue: str | None = None
    root: str | None = None
    max_parallel: int = 1
    name: str | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class Setup:
    """Options checked and completed."""

    url: str
    password: str | None
    password_env: str | None
    queue: str
    root: Path
    name: str
    max_parallel: int
    grace_s: float  # the start-up sweep's (the worker's config: daemon.stop_grace_seconds)

    def names(self) -> list[str]:
        if self.max_parallel == 1:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(1, self.max_parallel + 1)]

    def client(self, checking: bool = False) -> redis.Redis:
        extra: dict[str, Any] = {}
        if checking:  # an answer now or an error now, not redis-py's retries
            extra = {"socket_timeout": CHECK_TIMEOUT_S, "retry": Retry(NoBackoff(), 0)}
        return redis.Redis.from_url(
            self.url, password=self.password, socket_connect_timeout=CHECK_TIMEOUT_S, **extra
        )

    def context(self, name: str) -> jobrun.WorkerContext:
        hidden = frozenset([self.password_env] if self.password_env else [])
        return jobrun.WorkerContext(self.root, name, hidden)


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when `parent` (the process that forked it) dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the prctl took
        os._exit(1)


def prepare(opts: Options) -> Setup:
    """Check the options, the root, its config and Redis; StartError says what is wrong."""
    why = url_error(opts.url)
    if why is not None:
        raise StartError(f"--url {shown_url(opts.url)!r} {why}")
    root = Path(opts.root or os.getcwd()).expanduser().resolve()
    if not root.is_dir():
        raise StartError(f"--root {opts.root or root}: no such directory")
    try:
        config = jobrun.load_config(root)
    except ValidationError as exc:
        raise StartError(f"invalid config under --root {root}: {exc}") from None
    password = None
    if opts.password_env:
        password = os.environ.get(opts.password_env)
        if password is None:
            raise StartError(f"--password-env {opts.password_env}: the variable is not set")
    setup = Setup(
        url=opts.url,
        password=password,
        password_env=opts.password_env,
        queue=opts.queue or default_queue(root),
        root=root,
        name=opts.name or f"{socket.gethostname()}.{os.getpid()}",
        max_parallel=opts.max_parallel,
        grace_s=config.daemon.stop_grace_seconds,
    )
    with setup.client(checking=True) as client:
        try:
            client.ping()
            for name in setup.names():
                check_name(client, name)
        except redis.RedisError as exc:
            raise StartError(_describe(setup, exc)) from None
    return setup


def _describe(setup: Setup, exc: BaseException) -> str:
    where = shown_url(setup.url)
    if auth_error(exc):
        if setup.password_env:
            return f"Redis at {where} refused the password from ${setup.password_env}"
        return f"Redis at {where} wants a password: pass --password-env VAR (VAR holding it)"
    return f"cannot reach Redis at {where}: {exc}"


def check_name(client: redis.Redis, name: str) -> None:
    """Refuse a name a live worker holds; forget one a dead worker on this host left."""
    key = Worker.redis_worker_namespace_prefix + name
    data = client.hgetall(key)
    if not data or b"death" in data:
        return
    fields = {_str(k): _str(v) for k, v in data.items()}
    host, pid = fields.get("hostname", ""), int(fields.get("pid") or 0)
    if host == socket.gethostname() and pid and not marks.alive(pid):
        client.delete(key)
        client.srem(Worker.redis_workers_keys, key)
        for q in fields.get("queues", "").split(","):
            if q:
                client.srem(worker_registration.WORKERS_BY_QUEUE_KEY % q, key)
        return
    raise StartError(f"a worker named {name} is already running (pid {pid} on {host})")


def _str(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
