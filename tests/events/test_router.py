"""The event router in-process: delivery, overflow, retries, dead letters, event log.

The router runs on a real asyncio loop in a background thread; the test thread drives
it through that loop and waits on the router's own counters with `wait_for`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiwgd.config.events import EventsSection
from aiwgd.config.paths import Paths
from aiwgd.events.router import Event, EventRouter
from tests.utils import wait_for


class LoopThread:
    """An event loop in a thread; the test calls into it and waits on results."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        async def wrapper() -> Any:
            return fn(*args)

        return self.run(wrapper())

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def lt() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


def make_router(lt: LoopThread, root: Path | None = None, **settings: Any) -> EventRouter:
    router = EventRouter()
    paths = None
    if root is not None:
        paths = Paths(root)
        paths.daemon_dir.mkdir(parents=True, exist_ok=True)
    router.configure(paths, EventsSection(**settings))
    lt.run(router.start())
    return router


def recorder(
    seen: list[Event], fail_times: int = 0, fail_types: tuple[str, ...] = ()
) -> Callable[[Event], Coroutine[Any, Any, None]]:
    """A handler recording every call; fails the first `fail_times` calls per event id."""
    calls: dict[str, int] = {}

    async def handler(event: Event) -> None:
        calls[event.id] = calls.get(event.id, 0) + 1
        seen.append(event)
        if event.type in fail_types or calls[event.id] <= fail_times:
            raise RuntimeError(f"boom on {event.type} (call {calls[event.id]})")

    return handler


def test_globs_route_events_and_publish_returns_the_event(lt: LoopThread) -> None:
    router = make_router(lt)
    tasks: list[Event] = []
    files: list[Event] = []
    everything: list[Event] = []
    lt.call(router.subscribe, ["task.*"], recorder(tasks), "tasks")
    lt.call(router.subscribe, ["file.created", "file.deleted"], recorder(files), "files")
    lt.call(router.subscribe, ["*"], recorder(everything), "all")
    for t in ("task.queued", "file.created", "file.modified", "tasks.x", "task.completed"):
        ev = lt.call(router.publish, t, {"n": t}, "test")
        assert ev.type == t and ev.source == "test" and ev.data == {"n": t}
    wait_for(lambda: len(everything) == 5, 5, "all five events at the * subscriber")
    wait_for(lambda: len(tasks) == 2 and len(files) == 1, 5, "the glob subscribers")
    assert [e.type for e in tasks] == ["task.queued", "task.completed"]
    assert [e.type for e in files] == ["file.created"]
    ids = [e.id for e in everything]
    assert len(set(ids)) == 5
    assert [e.type for e in router.history] == [e.type for e in everything]


def test_slow_subscriber_never_blocks_publisher_or_others_and_overflow_is_counted(
    lt: LoopThread,
) -> None:
    router = make_router(lt)
    gate = asyncio.Event()
    fast: list[Event] = []

    async def stuck(event: Event) -> None:
        await gate.wait()

    lt.call(router.subscribe, ["*"], stuck, "stuck", 10)
    lt.call(router.subscribe, ["*"], recorder(fast), "fast")

    async def burst() -> float:
        t0 = time.perf_counter()
        for i in range(500):
            router.publish("load.tick", {"i": i}, "test")
        return time.perf_counter() - t0

    elapsed = lt.run(burst())
    assert elapsed < 1.0  # publish is synchronous bookkeeping only
    wait_for(lambda: len(fast) == 500, 5, "the fast subscriber to get all 500 events")
    status = {s["name"]: s for s in router.status()["subscribers"]}
    # The burst never yields, so the queue of ten filled and the rest overflowed.
    assert status["stuck"]["dropped"] == 490
    assert status["stuck"]["queued"] == 9  # the first one is in the stuck handler
    assert status["fast"]["dropped"] == 0 and status["fast"]["delivered"] == 500
    lt.loop.call_soon_threadsafe(gate.set)
    wait_for(lambda: router.find("stuck").delivered == 10, 5, "the stuck one to drain")


def test_failing_handler_is_retried_with_doubling_backoff_then_succeeds(
    lt: LoopThread, tmp_path: Path
) -> None:
    router = make_router(lt, tmp_path, max_retries=3, retry_base_ms=40)
    seen: list[Event] = []
    stamps: list[float] = []
    handler = recorder(seen, fail_times=2)

    async def timed(event: Event) -> None:
        stamps.append(time.monotonic())
        await handler(event)

    lt.call(router.subscribe, ["job.*"], timed, "flaky")
    lt.call(router.publish, "job.done", {}, "test")
    wait_for(lambda: router.find("flaky").delivered == 1, 5, "the third attempt to succeed")
    assert len(seen) == 3
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps[0] >= 0.035 and gaps[1] >= 0.075, gaps  # 40 ms, then 80 ms
    status = router.find("flaky").status()
    assert status["failed"] == 2 and status["retried"] == 2 and status["dead_lettered"] == 0
    assert router.dlq.entries == []


def test_a_retry_waits_on_a_timer_not_in_front_of_the_subscribers_other_events(
    lt: LoopThread,
) -> None:
    router = make_router(lt, max_retries=1, retry_base_ms=2000)
    seen: list[Event] = []
    lt.call(router.subscribe, ["*"], recorder(seen, fail_types=("bad.one",)), "mixed")
    lt.call(router.publish, "bad.one", {}, "test")
    for i in range(3):
        lt.call(router.publish, "good.one", {"i": i}, "test")
    # The good events arrive long before the bad one's 2 s retry is due.
    wait_for(lambda: len(seen) == 4, 1.5, "the good events while the bad one waits")
    assert [e.type for e in seen] == ["bad.one", "good.one", "good.one", "good.one"]
    assert router.find("mixed").status()["retrying"] == 1


def test_last_failure_goes_to_the_dlq_which_survives_a_restart_and_replays(
    lt: LoopThread, tmp_path: Path
) -> None:
    router = make_router(lt, tmp_path, max_retries=2, retry_base_ms=10)
    seen: list[Event] = []
    lt.call(router.subscribe, ["hook.*"], recorder(seen, fail_types=("hook.fire",)), "hooks")
    ev = lt.call(router.publish, "hook.fire", {"url": "x"}, "test")
    wait_for(lambda: len(router.dlq.entries) == 1, 5, "the event in the dead-letter queue")
    entry = router.dlq.entries[0]
    assert entry["event"]["id"] == ev.id and entry["event"]["data"] == {"url": "x"}
    assert entry["subscriber"] == "hooks"
    assert entry["attempts"] == 3  # the first try and two retries
    assert entry["error"] == "RuntimeError: boom on hook.fire (call 3)"
    assert entry["id"].startswith("dl-") and entry["time"] > 0
    lt.run(router.stop())
    lines = Paths(tmp_path).dlq_file.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [entry["id"]]

    # "Restart": a new router on the same files, its subscriber now healthy.
    lt2 = LoopThread()
    try:
        again = make_router(lt2, tmp_path)
        assert [e["id"] for e in again.dlq.entries] == [entry["id"]]
        healed: list[Event] = []
        lt2.call(again.subscribe, ["hook.*"], recorder(healed), "hooks")
        result = lt2.run(again.replay([entry["id"]]))
        assert result == {"replayed": [entry["id"]], "skipped": []}
        wait_for(lambda: len(healed) == 1, 5, "the replayed event")
        assert healed[0].id == ev.id and healed[0].data == {"url": "x"}
        assert again.dlq.entries == []
        assert Paths(tmp_path).dlq_file.read_text() == ""
        lt2.run(again.stop())
    finally:
        lt2.close()


def test_replay_without_a_live_subscriber_is_skipped_and_kept(
    lt: LoopThread, tmp_path: Path
) -> None:
    router = make_router(lt, tmp_path, max_retries=0)
    sub = lt.call(router.subscribe, ["*"], recorder([], fail_times=99), "gone-soon")
    lt.call(router.publish, "a.b", {}, "test")
    wait_for(lambda: len(router.dlq.entries) == 1, 5, "a dead letter")
    lt.call(router.unsubscribe, sub)
    result = lt.run(router.replay(None))
    assert result["replayed"] == []
    assert result["skipped"][0]["subscriber"] == "gone-soon"
    assert "no subscriber" in result["skipped"][0]["reason"]
    assert len(router.dlq.entries) == 1


def test_dlq_is_bounded_and_compacted(lt: LoopThread, tmp_path: Path) -> None:
    router = make_router(lt, tmp_path, max_retries=0, dlq_max=5)
    lt.call(router.subscribe, ["*"], recorder([], fail_times=99), "always-fails")
    for i in range(30):
        lt.call(router.publish, "x.fail", {"i": i}, "test")
    wait_for(lambda: router.find("always-fails").failed == 30, 5, "thirty failures")
    lt.run(router.dlq.flush())
    assert [e["event"]["data"]["i"] for e in router.dlq.entries] == [25, 26, 27, 28, 29]
    assert router.dlq.status()["evicted"] == 25
    lines = Paths(tmp_path).dlq_file.read_text().splitlines()
    assert len(lines) <= 5 + 10  # compacted once over the bound plus its slack
    lt.run(router.stop())
    reloaded = load_dlq_ids(tmp_path)
    assert reloaded == [25, 26, 27, 28, 29]


def load_dlq_ids(root: Path) -> list[int]:
    from aiwgd.events.dlq import DeadLetters

    dlq = DeadLetters(Paths(root).dlq_file, 5)
    dlq.load()
    return [e["event"]["data"]["i"] for e in dlq.entries]


def test_unsubscribing_dead_letters_pending_retries_and_queued_events(
    lt: LoopThread, tmp_path: Path
) -> None:
    router = make_router(lt, tmp_path, max_retries=3, retry_base_ms=60_000)
    gate = asyncio.Event()
    calls: list[str] = []

    async def handler(event: Event) -> None:
        calls.append(event.type)
        if event.type == "a.fail":
            raise RuntimeError("down")
        await gate.wait()

    sub = lt.call(router.subscribe, ["*"], handler, "stopping")
    lt.call(router.publish, "a.fail", {}, "test")
    lt.call(router.publish, "b.hang", {}, "test")  # handled, blocks on the gate
    lt.call(router.publish, "c.queued", {}, "test")  # waits behind it
    wait_for(lambda: calls == ["a.fail", "b.hang"], 5, "a failure and a hung delivery")
    lt.call(router.unsubscribe, sub)
    types = sorted(e["event"]["type"] for e in router.dlq.entries)
    assert types == ["a.fail", "c.queued"]
    errors = {e["event"]["type"]: e["error"] for e in router.dlq.entries}
    assert "before a retry" in errors["a.fail"]
    assert "not delivered" in errors["c.queued"]


def test_non_retrying_subscriber_failure_is_counted_not_dead_lettered(lt: LoopThread) -> None:
    router = make_router(lt, retry_base_ms=10)
    sub = lt.call(router.subscribe, ["*"], recorder([], fail_times=99), "socket", None, False)
    lt.call(router.publish, "a.b", {}, "test")
    wait_for(lambda: sub.failed == 1, 5, "the failure")
    assert sub.status()["retrying"] == 0 and router.dlq.entries == []


def test_event_log_is_written_rotated_and_refills_history(lt: LoopThread, tmp_path: Path) -> None:
    router = make_router(lt, tmp_path, log_max_mb=0.002, history=50)  # ~2 KB per file
    for i in range(60):
        lt.call(router.publish, "log.line", {"i": i, "pad": "x" * 40}, "test")
    paths = Paths(tmp_path)
    wait_for(lambda: router.log.written == 60, 5, "all 60 lines written")
    lt.run(router.stop())
    rotated = paths.events_file.with_name("events.jsonl.1")
    assert rotated.exists() and paths.events_file.stat().st_size <= 2100
    assert not paths.events_file.with_name("events.jsonl.3").exists()  # two backups only
    newest = json.loads(paths.events_file.read_text().splitlines()[-1])
    assert newest["data"]["i"] == 59 and newest["source"] == "test"

    lt2 = LoopThread()
    try:
        again = make_router(lt2, tmp_path, history=20)
        assert [e.data["i"] for e in again.history] == list(range(40, 60))
        lt2.run(again.stop())
    finally:
        lt2.close()


def test_reload_resizes_history_and_dlq(lt: LoopThread, tmp_path: Path) -> None:
    from aiwgd.config import Config

    router = make_router(lt, tmp_path, history=100)
    for i in range(30):
        lt.call(router.publish, "h.i", {"i": i}, "test")
    cfg = Config()
    cfg.events = EventsSection(history=10, dlq_max=3, max_retries=0)
    lt.run(router.apply_config(cfg))
    assert [e.data["i"] for e in router.history] == list(range(20, 30))
    assert router.settings.max_retries == 0 and router.dlq.max_entries == 3
