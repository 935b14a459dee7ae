"""Child.spawn with a sink of the caller's: a real process's output, from its first
byte, goes there (no swap after the spawn), and the child closes it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from aiwgd.procs.child import Child
from aiwgd.procs.output import OutputSink


class Collect(OutputSink):
    """Keeps every byte and says when it was closed."""

    def __init__(self) -> None:
        super().__init__(None, tail_bytes=0)
        self.data = b""
        self.notes: list[str] = []
        self.closed = False

    def feed(self, data: bytes) -> None:
        self.data += data

    def write_note(self, text: str) -> None:
        self.notes.append(text)

    def close(self) -> None:
        self.closed = True


def test_spawn_writes_into_the_given_sink(tmp_path: Path) -> None:
    async def run() -> tuple[Child, Collect]:
        sink = Collect()
        # Output at once: anything written before a swap would be lost to the old sink.
        code = "import sys; sys.stdout.write('first\\n'); sys.stdout.flush(); print('second')"
        child = await Child.spawn(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=dict(os.environ),
            log_path=tmp_path / "unused.log",
            header="[head]\n",
            sink=sink,
        )
        assert child.sink is sink
        await child.finish(grace=1)
        return child, sink

    child, sink = asyncio.run(run())
    assert sink.data == b"first\nsecond\n"
    assert sink.notes == ["[head]\n"]
    assert sink.closed
    assert child.returncode == 0
    assert not (tmp_path / "unused.log").exists()  # the given sink replaces the log


def test_a_failed_spawn_closes_the_given_sink(tmp_path: Path) -> None:
    async def run() -> Collect:
        sink = Collect()
        try:
            await Child.spawn([str(tmp_path / "no-such-program")], cwd=tmp_path, env={}, sink=sink)
        except OSError:
            return sink
        raise AssertionError("the spawn should have failed")

    assert asyncio.run(run()).closed
