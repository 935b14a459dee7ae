"""The daemon's way to an executor's Redis: the URL checked, the password taken from the
daemon's environment by name, redis-py clients with socket timeouts, and errors said
precisely ("cannot reach Redis at unix:///x/redis.sock: Connection refused").

Two clients per executor: an asyncio one for the daemon's own traffic (streams, stop
requests, heartbeats) on its loop, and a blocking one for RQ's API (enqueue, cancel,
workers), which is synchronous and runs in a thread. redis-py is imported here only:
the CLI's fast paths never import aiwgd.remote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from aiwgd.config.executors import shown_url, url_error
from aiwgd.errors import Unavailable

log = logging.getLogger("aiwgd.remote")

T = TypeVar("T")
CONNECT_TIMEOUT_S = 3.0
COMMAND_TIMEOUT_S = 5.0  # for everything but a blocking read, which adds its own block
MAX_BLOCK_S: Final = 10.0  # a blocking read's longest wait: a hung Redis shows within it
FIRST_BACKOFF_S: Final = 0.1
MAX_BACKOFF_S: Final = 2.0


class BadUrl(ValueError):
    """The executor's url is no Redis address (the message names the executor)."""


@dataclass(frozen=True)
class Target:
    """Where an executor's Redis is and how to log in, as the config says."""

    name: str  # the executor's name, for messages
    url: str
    password_env: str | None = None

    def check_url(self) -> None:
        why = url_error(self.url)
        if why is not None:
            raise BadUrl(f"executor {self.name}: url {shown_url(self.url)!r} {why}")

    def password(self) -> str | None:
        """The password from the daemon's environment; Unavailable if the variable is unset."""
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise Unavailable(
                f"executor {self.name}: password_env names ${self.password_env}, which is "
                "not set in the daemon's environment; set it and restart the daemon"
            )
        return value

    def async_client(self, single: bool = False) -> aredis.Redis:
        """For the daemon's loop (blocking reads up to MAX_BLOCK_S); `single`: one
        connection of its own (a blocking reader)."""
        self.check_url()
        return aredis.Redis.from_url(
            self.url,
            single_connection_client=single,
            password=self.password(),
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S + MAX_BLOCK_S,
            # Our own loops retry with backoff (and know Redis is away meanwhile).
            retry=AsyncRetry(NoBackoff(), 0),
        )

    def sync_client(self) -> redis.Redis:
        """For RQ's API, in a thread."""
        self.check_url()
        return redis.Redis.from_url(
            self.url,
            password=self.password(),
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )

    def describe(self, exc: BaseException) -> str:
        """What went wrong talking to Redis, in one line naming the executor."""
        where = f"executor {self.name}"
        if auth_error(exc):
            if self.password_env is None:
                return (
                    f"{where}: Redis at {shown_url(self.url)} wants a password; name the "
                    f"environment variable holding it in executors.{self.name}.password_env"
                )
            return f"{where}: Redis refused the password from ${self.password_env}"
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError):
            return f"{where}: cannot reach Redis at {shown_url(self.url)}: {_why(exc)}"
        return f"{where}: Redis at {shown_url(self.url)} answered with an error: {exc}"


def auth_error(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is Redis refusing to let us in."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, redis.AuthenticationError):
            return True
        if isinstance(seen, redis.ResponseError) and str(seen).startswith(("NOAUTH", "WRONGPASS")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unreachable(exc: BaseException) -> bool:
    """Redis is away (it may come back): not a refusal nor an error in what we asked."""
    return isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError) and not auth_error(
        exc
    )


def _why(exc: BaseException) -> str:
    """The OS's reason (Connection refused, No such file or directory) when there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, redis.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


async def ping(target: Target, client: aredis.Redis) -> None:
    """Unavailable with a precise message unless Redis answers PING."""
    try:
        await client.ping()
    except redis.RedisError as exc:
        raise Unavailable(target.describe(exc)) from None


class Away:
    """What a call returns when Redis did not answer (the caller tries again later)."""


AWAY: Final = Away()


class Retrying:
    """One follower's calls to Redis: a call Redis does not answer returns AWAY after a
    backoff (monotonic, cut short by `wake`); an outage is logged once, told to `note`,
    and its length to `on_back` once Redis answers again."""

    def __init__(
        self,
        describe: Callable[[BaseException], str],
        note: Callable[[str | None], None],
        client: Callable[[], aredis.Redis],
        wake: asyncio.Event,
        on_back: Callable[[float], None],
        context: dict[str, Any],
    ) -> None:
        self.describe = describe
        self.note = note
        self.client = client
        self.wake = wake
        self.on_back = on_back
        self.context = context  # for the log lines
        self._since: float | None = None
        self._backoff = FIRST_BACKOFF_S

    async def call(
        self,
        fn: Callable[[aredis.Redis], Awaitable[T]],
        pause: bool = True,
        client: Callable[[], aredis.Redis] | None = None,
    ) -> T | Away:
        try:
            result = await fn((client or self.client)())
        except (redis.RedisError, OSError, Unavailable) as exc:
            self.away(exc)
            if pause:
                await self.pause()
            return AWAY
        self.back()
        return result

    def away(self, exc: BaseException) -> None:
        if self._since is None:
            self._since = time.monotonic()
            why = exc.args[0] if isinstance(exc, Unavailable) else self.describe(exc)
            self.note(why)
            log.warning("Redis does not answer; retrying", extra={**self.context, "error": why})

    def back(self) -> None:
        self._backoff = FIRST_BACKOFF_S
        if self._since is not None:
            self.on_back(time.monotonic() - self._since)
            self._since = None
            self.note(None)
            log.info("Redis answers again", extra=self.context)

    async def pause(self) -> None:
        """Back off, waking early when `wake` is set (a stop)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), self._backoff)
        self._backoff = min(MAX_BACKOFF_S, self._backoff * 2)
