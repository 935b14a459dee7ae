"""The daemon's RQ executor (aiwgd.remote.executor) against a real redis-server.

No daemon and no `aiwg worker` here: each test builds an RqExecutor on its own asyncio
loop, as the supervisor does, and plays the worker's side itself by writing the
entries of aiwgd.remote.keys (FakeHorse: start, output, heartbeat, end) straight into
Redis. What is asserted is what the task would show: its log file, the Ending the
supervisor gets, where it runs, and what the worker would find in Redis (the RQ job
and its payload, `ctl` stop requests, `applied`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rq.job import Job

from aiwgd.config.executors import RqExecutorConfig
from aiwgd.config.model import Config
from aiwgd.errors import Unavailable
from aiwgd.procs.child import Exit
from aiwgd.remote import keys
from aiwgd.remote.connect import BadUrl, Target
from aiwgd.remote.executor import RqExecutor
from aiwgd.tasks.executors.base import Ending, EndReason, SpawnError
from aiwgd.tasks.model import Task
from tests.remote.conftest import RedisServer

QUEUE = "q-exec"
NO_EXIT = Exit(None, None)


def make(url: str, root: Path, **opts: Any) -> RqExecutor:
    cfg = RqExecutorConfig(url=url, queue=QUEUE, **opts)
    return RqExecutor("farm", cfg, Config(executors={"farm": cfg}), root)


def task(attempt: int = 1, **fields: Any) -> Task:
    fields.setdefault("command", ["echo", "hi"])
    return Task(id="t0abc", attempt=attempt, executor="farm", **fields)


async def until(cond: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll `cond` (sync or async) on the loop until it is truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if isinstance(got, Awaitable):
            got = await got
        if got:
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class FakeHorse:
    """The worker's side of one execution, written by hand (keys.py's entry shapes)."""

    def __init__(self, server: RedisServer, execution: str) -> None:
        self.server = server
        self.execution = execution

    def key(self, kind: str) -> str:
        return keys.key(QUEUE, kind, self.execution)

    def start(self, ttl_ms: int = 5000) -> None:
        run = {"worker": "w1", "host": "h1", "pid": 4242, "pgid": 4242, "started": time.time()}
        with self.server.client() as c:
            c.hset(self.key("run"), mapping=run)
            c.xadd(self.key("out"), {"k": "start", **run})
            self.beat(ttl_ms, c)

    def beat(self, ttl_ms: int, c: Any = None) -> None:
        hb = json.dumps({"worker": "w1", "host": "h1", "horse": 1})
        if c is None:
            with self.server.client() as c2:
                c2.set(self.key("hb"), hb, px=ttl_ms)
        else:
            c.set(self.key("hb"), hb, px=ttl_ms)

    def out(self, data: bytes) -> None:
        with self.server.client() as c:
            c.xadd(self.key("out"), {"k": "out", "d": data})

    def end(self, code: int | str = 0, sig: int | str = "", reason: str = "") -> None:
        with self.server.client() as c:
            c.xadd(self.key("out"), {"k": "end", "code": code, "signal": sig, "reason": reason})
            c.publish(keys.ends_channel(QUEUE), self.execution)

    def ctl(self) -> list[bytes]:
        with self.server.client() as c:
            return list(c.lrange(self.key("ctl"), 0, -1))

    def applied(self) -> bytes | None:
        with self.server.client() as c:
            return c.get(self.key("applied"))  # type: ignore[no-any-return]


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "sub").mkdir()
    yield tmp_path


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


# ---- connecting ----------------------------------------------------------------------


def test_url_errors_name_the_executor_and_the_problem() -> None:
    with pytest.raises(BadUrl, match=r"executor farm: url 'http://x:1' has scheme 'http'"):
        Target("farm", "http://x:1").check_url()
    with pytest.raises(BadUrl, match=r"url 'unix://' needs an absolute socket path"):
        Target("farm", "unix://").check_url()

    async def scenario() -> None:
        ex = RqExecutor("farm", RqExecutorConfig(url="unix://", queue=QUEUE), Config(), Path("/"))
        with pytest.raises(Unavailable, match="needs an absolute socket path"):
            await ex.check()
        with pytest.raises(SpawnError, match="needs an absolute socket path"):
            await ex.start(task(), "/dev/null", lambda: None)
        assert ex.health()["ok"] is False

    run(scenario)


def test_check_says_connection_refused(tmp_path: Path) -> None:
    # A socket bound but not listening: connect() is refused, as with a dead server.
    path = str(tmp_path / "dead.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)

    async def scenario() -> None:
        ex = make(f"unix://{path}", tmp_path)
        with pytest.raises(Unavailable) as err:
            await ex.check()
        assert str(err.value) == (
            f"executor farm: cannot reach Redis at unix://{path}: Connection refused"
        )
        assert err.value.code == -32007
        health = ex.health()
        assert health["ok"] is False and "Connection refused" in health["error"]
        with pytest.raises(SpawnError, match=r"cannot reach Redis at .*Connection refused"):
            await ex.start(task(), str(tmp_path / "log"), lambda: None)
        await ex.close()

    try:
        run(scenario)
    finally:
        sock.close()


def test_check_password_errors(
    redis_with_password: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = redis_with_password.url

    async def scenario() -> None:
        monkeypatch.setenv("T_REDIS_PW", "wrong")
        ex = make(url, tmp_path, password_env="T_REDIS_PW")
        with pytest.raises(Unavailable) as err:
            await ex.check()
        assert str(err.value) == "executor farm: Redis refused the password from $T_REDIS_PW"
        await ex.close()

        monkeypatch.delenv("T_REDIS_PW")
        ex = make(url, tmp_path, password_env="T_REDIS_PW")
        with pytest.raises(Unavailable, match=r"\$T_REDIS_PW, which is not set in the daemon"):
            await ex.check()

        ex = make(url, tmp_path)
        with pytest.raises(Unavailable, match="wants a password; name the environment variable"):
            await ex.check()

        monkeypatch.setenv("T_REDIS_PW", redis_with_password.password or "")
        ex = make(url, tmp_path, password_env="T_REDIS_PW")
        await ex.check()
        assert ex.health() == {
            "type": "rq",
            "queue": QUEUE,
            "url": url,
            "ok": True,
            "error": None,
            "checked": ex.health()["checked"],
        }
        await ex.close()

    run(scenario)


# ---- starting, output, end -----------------------------------------------------------


def test_start_enqueues_a_job_with_the_payload_and_no_env(redis: RedisServer, root: Path) -> None:
    async def scenario() -> None:
        ex = make(redis.url, root, heartbeat_ttl_s=6)
        t = task(attempt=2, cwd=str(root / "sub"))
        attempt = await ex.start(t, str(root / "log"), lambda: None)
        execution = keys.execution_id(t.id, 2)
        with redis.client() as c:
            job = Job.fetch(execution, connection=c, serializer=keys.SERIALIZER)
            assert job.func_name == keys.JOB_FUNC
            assert job.get_status() == "queued"
            assert tuple(job.args) == (
                {
                    "v": keys.VERSION,
                    "execution": execution,
                    "task": t.id,
                    "attempt": 2,
                    "argv": ["echo", "hi"],
                    "cwd": "sub",
                    "root": str(root),
                    "grace_s": 10.0,
                    "tail_bytes": Config().tasks.output_tail_bytes,
                    "heartbeat_ttl_s": 6.0,
                    "queue": QUEUE,
                },
            )
            assert job.timeout == -1 and job.retries_left is None
        assert attempt.placement() == {
            "executor": "farm",
            "execution": execution,
            "phase": "queued",
        }
        with pytest.raises(SpawnError, match="env: values are not sent to executor farm"):
            await ex.start(task(env={"SECRET": "x"}), str(root / "log2"), lambda: None)
        with pytest.raises(SpawnError, match="outside the project root"):
            await ex.start(task(cwd="/"), str(root / "log3"), lambda: None)
        await ex.close()

    run(scenario)


def test_output_goes_to_the_log_and_the_end_ends_it(redis: RedisServer, root: Path) -> None:
    async def scenario() -> None:
        ex = make(redis.url, root)
        told: list[int] = []
        log_path = root / "t.log"
        attempt = await ex.start(task(), str(log_path), lambda: told.append(1))
        horse = FakeHorse(redis, attempt.execution)
        waiting = asyncio.ensure_future(attempt.wait(0))
        horse.start()
        horse.out(b"hello ")
        await until(lambda: log_path.exists() and log_path.read_bytes() == b"hello ", "output")
        assert attempt.placement() == {
            "executor": "farm",
            "execution": attempt.execution,
            "phase": "started",
            "worker": "w1",
            "host": "h1",
            "pid": 4242,
            "pgid": 4242,
        }
        horse.out(b"world\n")
        horse.end(code=3)
        ending = await waiting
        assert ending == Ending(Exit(3, None), None, None)
        assert log_path.read_bytes() == b"hello world\n"
        assert attempt.output_tail() == "hello world\n"
        assert told, "on_output was never called"
        with redis.client() as c:
            last = c.xrevrange(horse.key("out"), count=1)[0][0]
        assert horse.applied() == last
        await ex.close()

    run(scenario)


# ---- stopping ------------------------------------------------------------------------


def test_cancel_of_a_queued_job_cancels_it_in_rq(redis: RedisServer, root: Path) -> None:
    async def scenario() -> None:
        ex = make(redis.url, root)
        attempt = await ex.start(task(), str(root / "log"), lambda: None)
        waiting = asyncio.ensure_future(attempt.wait(0))
        await asyncio.sleep(0)
        attempt.stop(EndReason.CANCELLED)
        assert await waiting == Ending(NO_EXIT, EndReason.CANCELLED)
        horse = FakeHorse(redis, attempt.execution)
        assert horse.ctl() == [b"cancelled"]  # a worker that took it anyway sees it
        with redis.client() as c:
            assert Job.fetch(attempt.execution, connection=c).get_status() == "canceled"
        await ex.close()

    run(scenario)


def test_cancel_of_a_running_attempt_waits_for_the_workers_end(
    redis: RedisServer, root: Path
) -> None:
    async def scenario() -> None:
        ex = make(redis.url, root)
        attempt = await ex.start(task(), str(root / "log"), lambda: None)
        horse = FakeHorse(redis, attempt.execution)
        horse.start()
        waiting = asyncio.ensure_future(attempt.wait(0))
        await until(lambda: attempt.placement()["phase"] == "started", "the start entry")
        attempt.stop(EndReason.CANCELLED)
        attempt.stop(EndReason.TIMEOUT)  # the first reason wins
        await until(horse.ctl, "the stop request in ctl")
        assert horse.ctl() == [b"cancelled"]
        assert not waiting.done()
        horse.end(code="", sig=15, reason="cancelled")
        assert await waiting == Ending(Exit(None, 15), EndReason.CANCELLED)
        await ex.close()

    run(scenario)


def test_shutdown_detaches_without_touching_redis(redis: RedisServer, root: Path) -> None:
    async def scenario() -> None:
        ex = make(redis.url, root)
        attempt = await ex.start(task(), str(root / "log"), lambda: None)
        horse = FakeHorse(redis, attempt.execution)
        horse.start()
        with redis.client() as c:
            before = {k: c.type(k) for k in c.keys("*")}
            status = Job.fetch(attempt.execution, connection=c).get_status()
        waiting = asyncio.ensure_future(attempt.wait(0))
        await until(lambda: attempt.placement()["phase"] == "started", "the start entry")
        attempt.stop(EndReason.SHUTDOWN)
        assert await waiting == Ending(NO_EXIT, EndReason.DETACHED)
        with redis.client() as c:
            after = {k: c.type(k) for k in c.keys("*") if b":applied:" not in k}
            assert Job.fetch(attempt.execution, connection=c).get_status() == status
        assert after == before and horse.ctl() == []
        await ex.close()

    run(scenario)


# ---- after a daemon restart ----------------------------------------------------------


def test_reattach_goes_on_from_applied(redis: RedisServer, root: Path) -> None:
    async def scenario() -> None:
        log_path = root / "t.log"
        ex = make(redis.url, root)
        t = task()
        attempt = await ex.start(t, str(log_path), lambda: None)
        horse = FakeHorse(redis, attempt.execution)
        horse.start()
        horse.out(b"one\n")
        waiting = asyncio.ensure_future(attempt.wait(0))
        await until(lambda: log_path.exists() and log_path.read_bytes() == b"one\n", "one")
        await until(horse.applied, "applied")
        attempt.stop(EndReason.SHUTDOWN)
        assert (await waiting).reason == EndReason.DETACHED
        await ex.close()
        horse.out(b"two\n")  # while no daemon runs

        ex = make(redis.url, root)
        again = await ex.reattach(t, str(log_path), lambda: None)
        waiting = asyncio.ensure_future(again.wait(0))
        await until(lambda: log_path.read_bytes() == b"one\ntwo\n", "two, once")
        horse.out(b"three\n")
        horse.end(code=0)
        assert await waiting == Ending(Exit(0, None), None, None)
        assert log_path.read_bytes() == b"one\ntwo\nthree\n"
        assert again.placement()["worker"] == "w1"
        await ex.close()

    run(scenario)


def test_reattach_to_an_execution_redis_never_saw_is_lost(redis: RedisServer, root: Path) -> None:
    async def scenario() -> None:
        ex = make(redis.url, root)
        attempt = await ex.reattach(task(attempt=3), str(root / "log"), lambda: None)
        ending = await asyncio.wait_for(attempt.wait(0), 5)
        assert ending.reason == EndReason.LOST and ending.exit == NO_EXIT
        assert ending.detail is not None and "Redis knows nothing of execution" in ending.detail
        await ex.close()

    run(scenario)


# ---- a silent worker, a late end, Redis away ------------------------------------------


def test_lost_when_the_heartbeat_disappears(redis: RedisServer, root: Path) -> None:
    async def scenario() -> None:
        ex = make(redis.url, root, heartbeat_ttl_s=1)
        attempt = await ex.start(task(), str(root / "log"), lambda: None)
        horse = FakeHorse(redis, attempt.execution)
        with redis.client() as c:  # what RQ does when a worker takes it
            c.hset(Job.key_for(attempt.execution), "status", "started")
        horse.start(ttl_ms=300)  # and then nothing: the worker died
        started = time.monotonic()
        ending = await asyncio.wait_for(attempt.wait(0), 10)
        assert ending == Ending(NO_EXIT, EndReason.LOST, "worker w1 on h1 stopped heartbeating")
        assert time.monotonic() - started >= 1.0  # not before heartbeat_ttl_s
        assert horse.ctl() == [b"lost"]  # a worker heard from again stops its child
        await ex.close()

    run(scenario)


def test_a_stale_attempts_end_is_logged_and_ignored(
    redis: RedisServer, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiwgd.remote")

    async def scenario() -> None:
        ex = make(redis.url, root)
        ex.set_current(lambda task_id: 2 if task_id == "t0abc" else None)
        attempt = await ex.start(task(attempt=2), str(root / "log"), lambda: None)
        with redis.client() as c:
            await until(lambda: c.pubsub_numsub(keys.ends_channel(QUEUE))[0][1], "the listener")
        FakeHorse(redis, keys.execution_id("t0abc", 1)).end(code=0)
        FakeHorse(redis, attempt.execution).end(code=0)  # the current one: its reader's
        await until(lambda: caplog.records, "a warning")
        stale = [
            r for r in caplog.records if r.getMessage() == "ignored the end of a stale attempt"
        ]
        assert [getattr(r, "execution", None) for r in stale] == [keys.execution_id("t0abc", 1)]
        assert getattr(stale[0], "current_attempt", None) == 2
        assert await attempt.wait(0) == Ending(Exit(0, None), None, None)
        # The end of one it followed to its end is no news, even once it is not current.
        ex.set_current(lambda task_id: None)
        caplog.clear()
        FakeHorse(redis, attempt.execution).end(code=0)
        FakeHorse(redis, keys.execution_id("t0abc", 3)).end(code=0)
        await until(lambda: caplog.records, "a warning")
        assert [getattr(r, "execution", None) for r in caplog.records] == [
            keys.execution_id("t0abc", 3)
        ]
        await ex.close()

    run(scenario)


def test_redis_away_the_reader_retries_and_loses_nothing(redis: RedisServer, root: Path) -> None:
    async def scenario() -> None:
        ex = make(redis.url, root, heartbeat_ttl_s=1)
        log_path = root / "t.log"
        attempt = await ex.start(task(), str(log_path), lambda: None)
        horse = FakeHorse(redis, attempt.execution)
        horse.start(ttl_ms=60_000)
        horse.out(b"before\n")
        waiting = asyncio.ensure_future(attempt.wait(0))
        await until(lambda: log_path.exists() and log_path.read_bytes() == b"before\n", "before")
        await asyncio.to_thread(redis.stop)
        await until(lambda: ex.health()["error"], "the reader to notice")
        assert "cannot reach Redis" in ex.health()["error"]
        # Longer than heartbeat_ttl_s: the lost clock must stand still meanwhile.
        outage = time.monotonic()
        await until(lambda: time.monotonic() - outage > 1.5, "an outage over the ttl")
        assert not waiting.done()
        await asyncio.to_thread(redis.start)
        horse.beat(60_000)
        horse.out(b"after\n")
        horse.end(code=0)
        assert await asyncio.wait_for(waiting, 20) == Ending(Exit(0, None), None, None)
        assert log_path.read_bytes() == b"before\nafter\n"
        assert ex.health()["error"] is None
        await ex.close()

    run(scenario)
