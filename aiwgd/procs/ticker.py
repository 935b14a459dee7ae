"""Every running child's tree snapshot, taken together once a second.

A child records its descendants while it runs (aiwgd.procs.child), so one that left
the process group is still found when the child is stopped. One timer and one thread
hop a second serve all of a loop's children, not one each: with a hundred services, a
timer and a thread hop per child were most of an idle daemon's CPU and wakeups
(bench/services.py).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol

from aiwgd.procs.tree import tree_snapshot

SNAPSHOT_INTERVAL_S = 1.0


class Watched(Protocol):
    """What the ticker needs of a child (aiwgd.procs.child.Child)."""

    pid: int
    known: dict[int, float]  # descendants seen so far: {pid: create time}

    @property
    def returncode(self) -> int | None: ...


def _snapshots(pids: list[int]) -> list[dict[int, float]]:
    return [tree_snapshot(pid) for pid in pids]


class Ticker:
    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Ticker] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.children: set[Watched] = set()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Ticker:
        """The loop's ticker (one per event loop: tests run many loops)."""
        ticker = cls._by_loop.get(loop)
        if ticker is None:
            ticker = cls._by_loop[loop] = cls(loop)
        return ticker

    def add(self, child: Watched) -> None:
        self.children.add(child)
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run(), name="child-tree-snapshots")

    def discard(self, child: Watched) -> None:
        self.children.discard(child)

    async def _run(self) -> None:
        while True:
            live = [c for c in self.children if c.returncode is None]
            self.children.intersection_update(live)
            if not live:
                return  # the next add() starts it again
            trees = await asyncio.to_thread(_snapshots, [c.pid for c in live])
            for child, tree in zip(live, trees, strict=True):
                child.known.update(tree)
            await asyncio.sleep(SNAPSHOT_INTERVAL_S)
