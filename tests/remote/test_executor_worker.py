"""The daemon's RQ executor with a real `aiwg worker` on the other side: the executor's
jobs are what the worker runs, and what the worker writes back is what the task shows
(its log, its Ending, where it runs, the workers list). No daemon: the test builds the
RqExecutor on its own loop, as the supervisor does. Also Redis away when an attempt
starts (on_unreachable "wait") and the durable stop request of recover()."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from rq.job import Job

from aiwgd.procs.child import Exit
from aiwgd.remote import keys
from aiwgd.tasks.executors.base import Ending, EndReason, SpawnError
from tests.remote.conftest import RedisServer, marked
from tests.remote.test_executor_rq import NO_EXIT, QUEUE, make, run, task, until
from tests.remote.workerjobs import project, script


def test_a_worker_runs_the_attempt_and_the_task_log_gets_its_output(
    redis: RedisServer, start_worker: Any, tmp_path: Path
) -> None:
    root = project(tmp_path)
    (root / "sub").mkdir()
    go = root / "go"
    argv = script(
        root,
        "prog.py",
        "print('hello from', os.getcwd(), flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.02)\n"
        "print('bye', flush=True)\nsys.exit(3)\n",
    )
    argv[1] = str(root / argv[1])
    w = start_worker(url=redis.url, queue=QUEUE, root=root)
    log_path = tmp_path / "t.log"

    async def scenario() -> None:
        ex = make(redis.url, root, heartbeat_ttl_s=3)
        attempt = await ex.start(task(command=argv, cwd="sub"), str(log_path), lambda: None)
        waiting = asyncio.ensure_future(attempt.wait(0))
        await until(lambda: log_path.exists() and b"hello" in log_path.read_bytes(), "hello")
        placed = attempt.placement()
        assert placed["phase"] == "started" and placed["worker"] == w.name
        assert isinstance(placed["pid"], int) and placed["pgid"] == placed["pid"]
        listed = await ex.workers()
        assert [(r["name"], r["execution"], r["task"]) for r in listed] == [
            (w.name, attempt.execution, "t0abc")
        ]
        go.touch()
        assert await asyncio.wait_for(waiting, 20) == Ending(Exit(3, None), None, None)
        assert log_path.read_bytes() == f"hello from {root / 'sub'}\nbye\n".encode()
        await ex.close()

    run(scenario)


def test_cancel_stops_the_workers_child(
    redis: RedisServer, start_worker: Any, tmp_path: Path
) -> None:
    root = project(tmp_path)
    argv = script(root, "wait.py", "print('up', flush=True)\ntime.sleep(60)\n")
    argv[1] = str(root / argv[1])
    start_worker(url=redis.url, queue=QUEUE, root=root)
    log_path = tmp_path / "t.log"

    async def scenario() -> None:
        ex = make(redis.url, root, heartbeat_ttl_s=3)
        attempt = await ex.start(task(command=argv), str(log_path), lambda: None)
        waiting = asyncio.ensure_future(attempt.wait(0))
        await until(lambda: log_path.exists() and b"up" in log_path.read_bytes(), "up")
        attempt.stop(EndReason.CANCELLED)
        ending = await asyncio.wait_for(waiting, 20)
        assert ending == Ending(Exit(None, 15), EndReason.CANCELLED)  # SIGTERM, in the grace
        assert marked(QUEUE) == []  # nothing of it is left on the worker's host
        await ex.close()

    run(scenario)


def test_redis_away_at_start_waits_or_refuses(redis: RedisServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        await asyncio.to_thread(redis.stop)
        strict = make(redis.url, tmp_path)
        with pytest.raises(SpawnError, match="cannot reach Redis"):
            await strict.start(task(), str(tmp_path / "log0"), lambda: None)

        ex = make(redis.url, tmp_path, on_unreachable="wait")
        attempt = await ex.start(task(), str(tmp_path / "log1"), lambda: None)
        assert attempt.placement()["phase"] == "waiting"
        waiting = asyncio.ensure_future(attempt.wait(0))
        await asyncio.to_thread(redis.start)
        await until(lambda: attempt.placement()["phase"] == "queued", "the enqueue")
        with redis.client() as c:
            assert Job.fetch(attempt.execution, connection=c).get_status() == "queued"

        # A stop while it still waits ends it there: nothing ran, nothing is enqueued.
        await asyncio.to_thread(redis.stop)
        other = await ex.start(task(attempt=2), str(tmp_path / "log2"), lambda: None)
        assert other.placement()["phase"] == "waiting"
        pending = asyncio.ensure_future(other.wait(0))
        other.stop(EndReason.CANCELLED)
        assert await asyncio.wait_for(pending, 5) == Ending(NO_EXIT, EndReason.CANCELLED)
        attempt.stop(EndReason.SHUTDOWN)
        assert (await waiting).reason == EndReason.DETACHED
        await strict.close()
        await ex.close()

    run(scenario)


def test_recover_leaves_a_durable_stop_request(redis: RedisServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        ex = make(redis.url, tmp_path)
        t = task(command=[sys.executable, "-c", "pass"])
        attempt = await ex.start(t, str(tmp_path / "log"), lambda: None)
        assert await ex.recover(t) == []
        assert await ex.sweep() == {}
        with redis.client() as c:
            assert c.lrange(keys.key(QUEUE, "ctl", keys.execution_id(t.id, 1)), 0, -1) == [
                b"shutdown"
            ]
            assert Job.fetch(attempt.execution, connection=c).get_status() == "canceled"
        await ex.close()

    run(scenario)


def test_a_refusal_by_the_worker_says_why(
    redis: RedisServer, start_worker: Any, tmp_path: Path
) -> None:
    root = project(tmp_path)
    start_worker(url=redis.url, queue=QUEUE, root=root)

    async def scenario() -> None:
        ex = make(redis.url, root, heartbeat_ttl_s=3)
        t = task(command=[sys.executable, "-c", "pass"], cwd="not-checked-out")
        attempt = await ex.start(t, str(tmp_path / "t.log"), lambda: None)
        ending = await asyncio.wait_for(attempt.wait(0), 20)
        assert ending.exit == NO_EXIT and ending.reason is None
        assert ending.detail is not None
        assert ending.detail.startswith("[aiwg worker] refused: the project is not checked out")
        assert "not-checked-out" in ending.detail
        await ex.close()

    run(scenario)


def test_abort_asks_the_worker_to_stop_and_reads_no_further(
    redis: RedisServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        ex = make(redis.url, tmp_path)
        attempt = await ex.start(task(), str(tmp_path / "log"), lambda: None)
        await attempt.abort()
        assert attempt.placement()["phase"] == "ended"
        with redis.client() as c:
            assert c.lrange(keys.key(QUEUE, "ctl", attempt.execution), 0, -1) == [b"cancelled"]
            assert Job.fetch(attempt.execution, connection=c).get_status() == "canceled"
        await ex.close()

    run(scenario)
