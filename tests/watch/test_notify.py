"""The watch thread on its own: a real watchfiles RustNotify on real directories.

One event loop per test (`asyncio.run`); the sink records what the thread hands over.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

from aiwgd.watch.notify import NotifyThread, live_threads
from aiwgd.watch.state import Dated

STEP_MS = 50


class Recorder:
    """A notify.Sink that takes every path and keeps what it is given."""

    def __init__(self) -> None:
        self.batches: list[list[Dated]] = []
        self.errors: list[tuple[Exception, float]] = []
        self.arrived = asyncio.Event()

    def relevant(self, path: str) -> bool:
        return not path.endswith(".ignored")

    def structural(self, path: str) -> bool:
        return False

    def take(self, changes: list[Dated], raw: int) -> None:
        self.batches.append(changes)
        self.arrived.set()

    def failed(self, exc: Exception, since: float) -> None:
        self.errors.append((exc, since))
        self.arrived.set()

    def changes(self) -> dict[str, tuple[float, float | None]]:
        return {path: (at, stamp) for batch in self.batches for path, at, stamp in batch}

    async def until(self, done: Callable[[], bool], timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())


async def ended(w: NotifyThread, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while w.alive:
        assert time.monotonic() < deadline, "the watch thread did not end"
        await asyncio.sleep(STEP_MS / 1000)


def watch(root: Path, sink: Recorder) -> NotifyThread:
    # An age clamp (lag_s) well past two steps: a loaded machine's late delivery must not
    # make the dating look wrong.
    return NotifyThread((str(root),), True, STEP_MS, 1.0, sink)


def test_changes_come_dated_by_when_they_happened(tmp_path: Path) -> None:
    async def main() -> None:
        (tmp_path / "old.txt").write_text("x")
        sink = Recorder()
        w = watch(tmp_path, sink)
        await w.start()
        written = time.monotonic()
        (tmp_path / "new.txt").write_text("x")
        (tmp_path / "new.ignored").write_text("x")
        (tmp_path / "old.txt").unlink()
        await sink.until(lambda: {"new.txt", "old.txt"} <= {Path(p).name for p in sink.changes()})
        got = {Path(p).name: v for p, v in sink.changes().items()}
        assert "new.ignored" not in got  # dropped in the thread: the loop never sees it
        for name in ("new.txt", "old.txt"):
            at, stamp = got[name]
            # Not the delivery time (up to a step later): the change's, from its ctime
            # (the removed file's from its directory's, which the removal set).
            assert written - 0.02 <= at <= written + 0.05, (name, at - written)
            assert stamp is not None and abs(stamp - os.lstat(tmp_path).st_ctime) < 1
        w.stop()

    asyncio.run(main())


def test_a_watch_that_cannot_be_created_is_a_failure_told_to_the_sink(tmp_path: Path) -> None:
    async def main() -> None:
        sink = Recorder()
        before = time.time()
        w = watch(tmp_path, sink)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        lowest_free = os.open(os.devnull, os.O_RDONLY)
        os.close(lowest_free)
        # No file descriptor left for the inotify instance: what the instance limit does.
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        try:
            await w.start()  # returns: the failure was told
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert len(sink.errors) == 1 and not sink.batches
        exc, since = sink.errors[0]
        assert "Too many open files" in str(exc)
        assert before <= since <= time.time()
        await ended(w)

    asyncio.run(main())


def test_stop_does_not_wait_and_the_thread_ends(tmp_path: Path) -> None:
    async def main() -> None:
        sink = Recorder()
        w = watch(tmp_path, sink)
        await w.start()
        assert w.alive and live_threads() >= 1
        t0 = time.monotonic()
        w.stop()
        assert time.monotonic() - t0 < 0.01  # mid-step: the thread is waiting in its Pacer
        await ended(w)
        assert not sink.errors  # a stopped watch's end is not a failure

    asyncio.run(main())


def test_a_change_is_delivered_within_one_step_not_two(tmp_path: Path) -> None:
    # The write lands right after the thread began its first wait: Rust's own step loop
    # would see it at the first look and hand it over only at the second (two steps).
    async def main() -> None:
        sink = Recorder()
        w = NotifyThread((str(tmp_path),), True, 1000, 5.0, sink)
        await w.start()
        t0 = time.monotonic()
        (tmp_path / "one.txt").write_text("x")
        await sink.until(lambda: bool(sink.batches))
        took = time.monotonic() - t0
        assert took < 1.5, f"delivered {took:.2f}s after the write (step 1 s)"
        w.stop()
        await ended(w)

    asyncio.run(main())


def test_stop_wakes_a_long_step_and_the_thread_ends_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        sink = Recorder()
        w = NotifyThread((str(tmp_path),), True, 5000, 10.0, sink)
        await w.start()
        w.stop()
        await ended(w, timeout=1.0)  # not the rest of a 5 s step

    asyncio.run(main())
