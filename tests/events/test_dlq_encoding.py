"""Regression: a dead letter whose event holds a lone surrogate ended the DLQ's writer.

A file event for a name that is not UTF-8 carries it as `os.fsdecode` gives it
(`caf\\udce9.txt`). Writing that dead letter as UTF-8 raised UnicodeEncodeError, which
the writer loop did not catch: it ended, and no later dead letter reached the file.
Now the line is written with the surrogate JSON-escaped, as the event log writes it,
and no write failure of any kind ends the writer loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiwgd.config.events import EventsSection
from aiwgd.config.paths import Paths
from aiwgd.events.router import Event, EventRouter

NOT_UTF8 = "caf\udce9.txt"  # os.fsdecode(b"caf\xe9.txt")


async def until(predicate: Callable[[], Any], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def start_router(root: Path) -> EventRouter:
    router = EventRouter()
    router.configure(Paths(root), EventsSection(max_retries=1, retry_base_ms=1))
    await router.start()
    return router


def test_dead_letter_with_a_lone_surrogate_is_written_and_later_ones_too(
    tmp_path: Path,
) -> None:
    Paths(tmp_path).daemon_dir.mkdir(parents=True, exist_ok=True)
    dlq_file = Paths(tmp_path).dlq_file

    async def always_fails(event: Event) -> None:
        raise RuntimeError(f"cannot handle {event.data['path']!r}")

    async def scenario() -> None:
        router = await start_router(tmp_path)
        try:
            router.subscribe(["file.*"], always_fails, "broken")
            # One at a time, so the second is a later write by the same writer loop.
            for n, path in enumerate([NOT_UTF8, "ok.txt"], 1):
                router.publish("file.created", {"path": path}, "watch")
                await until(lambda n=n: len(router.dlq.entries) == n, f"dead letter {n}")
                await asyncio.wait_for(router.dlq.flush(), 5)
            assert router.dlq._task is not None and not router.dlq._task.done()
            assert router.dlq.status()["write_errors"] == 0
            assert router.dlq.status()["last_error"] is None
        finally:
            await router.stop()

        lines = dlq_file.read_bytes().decode("utf-8").splitlines()  # valid UTF-8
        assert [json.loads(line)["event"]["data"]["path"] for line in lines] == [
            NOT_UTF8,
            "ok.txt",
        ]
        assert "\\udce9" in lines[0]  # escaped, as the event log writes it

        again = await start_router(tmp_path)  # a reload: a new router on the same dir
        try:
            paths = [e["event"]["data"]["path"] for e in again.dlq.entries]
            assert paths == [NOT_UTF8, "ok.txt"]
            assert [e["subscriber"] for e in again.dlq.entries] == ["broken", "broken"]
        finally:
            await again.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_dead_letter_that_cannot_be_json_is_counted_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    Paths(tmp_path).daemon_dir.mkdir(parents=True, exist_ok=True)

    async def always_fails(event: Event) -> None:
        raise RuntimeError("no")

    async def scenario() -> None:
        router = await start_router(tmp_path)
        try:
            router.subscribe(["x.*"], always_fails, "broken")
            router.publish("x.bad", {"key": {("not", "a", "string"): 1}}, "test")
            await until(lambda: router.dlq.status()["write_errors"] == 1, "the write error")
            assert "cannot be written as JSON" in (router.dlq.status()["last_error"] or "")
            router.publish("x.good", {"n": 1}, "test")
            await until(lambda: len(router.dlq.entries) == 2, "the second dead letter")
            await asyncio.wait_for(router.dlq.flush(), 5)
            assert router.dlq.status()["last_error"] is None  # written again
        finally:
            await router.stop()
        lines = Paths(tmp_path).dlq_file.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["event"]["type"] for line in lines] == ["x.good"]

    asyncio.run(asyncio.wait_for(scenario(), 30))
