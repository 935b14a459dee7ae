"""A child process for crash tests: writes to a TaskStore until it is killed.

Run as `python -m tests.store_writer ROOT COMPACT_EVERY`. Every line it prints is a
write the store acknowledged (printed only after `add`/`update` returned):
`A <id> <tag>` for an added task, `R <id>` for one moved to running. The parent kills
it with SIGKILL at a random moment and checks that every printed write is on disk.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiwgd.config import Paths
from aiwgd.config.tasks import TasksSection
from aiwgd.tasks.model import Task
from aiwgd.tasks.store.store import TaskStore

WRITERS = 8


async def main(root: Path, compact_every: int) -> None:
    store = TaskStore(Paths(root), TasksSection(compact_every=compact_every))
    await store.start()
    print(f"S {len(store)}", flush=True)

    async def writer(w: int) -> None:
        i = 0
        while True:
            tag = f"w{w}-{i}-{'x' * (i % 50)}"
            task = Task(id=store.new_id(), command=["echo", tag], metadata={"w": w, "i": i})
            await store.add(task)
            print(f"A {task.id} {tag}", flush=True)
            if i % 3 == 0:
                await store.update(task.id, state="running", runner={"pid": 1000 + i})
                print(f"R {task.id}", flush=True)
            i += 1

    await asyncio.gather(*(writer(w) for w in range(WRITERS)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
