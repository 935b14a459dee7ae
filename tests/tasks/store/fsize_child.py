"""A child process that drives the store's journal into real short writes.

Run as `python -m tests.tasks.store.fsize_child ROOT`. A soft RLIMIT_FSIZE a little
above the journal's length makes the kernel accept only part of the next write (a
short count), then refuse the rest with EFBIG: what a full disk does, in one process
and without root. Python ignores SIGXFSZ, so the process lives on. The limit is set
here, in a child, never in the test process. Prints one JSON report on stdout.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from pathlib import Path
from typing import Any

from aiwgd import errors
from aiwgd.config import Paths
from aiwgd.config.tasks import TasksSection
from aiwgd.tasks.model import Task
from aiwgd.tasks.store.store import TaskStore

PROMPT = "q" * 700  # a line of about 1 KiB


def limit_to(extra: int, journal: Path) -> None:
    """Let the journal grow by `extra` bytes at most (any file: the limit is per write)."""
    soft = journal.stat().st_size + extra
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def unlimit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))


async def main(root: Path) -> dict[str, Any]:
    paths = Paths(root)
    store = TaskStore(paths, TasksSection())
    await store.start()
    acked: list[str] = []
    refused: list[str] = []
    messages: list[str] = []
    for i in range(3):
        acked.append((await store.add(Task(id=store.new_id(), prompt=f"{i} {PROMPT}"))).id)
    store.new_id()  # reserve the id block now: tasks.ids is written under no limit

    # Room for one more line and half of the next: that one is cut short.
    limit_to(1500, paths.tasks_journal)
    for i in range(4):
        task = Task(id=store.new_id(), prompt=f"full {i} {PROMPT}")
        try:
            acked.append((await store.add(task)).id)
        except errors.Unavailable as exc:
            refused.append(task.id)
            messages.append(exc.message)
    journal_ends_whole = paths.tasks_journal.read_bytes().endswith(b"\n")
    in_memory = [t for t in refused if store.get(t) is not None]

    # An update the disk refuses leaves the task exactly as it was.
    before = store.get(acked[0])
    try:
        await store.update(acked[0], output_tail="t" * 4000)
        update_refused = False
    except errors.Unavailable:
        update_refused = True
    update_undone = store.get(acked[0]) is before
    error_while_full = store.status()["last_error"]

    unlimit()  # space returns
    acked.append((await store.add(Task(id=store.new_id(), prompt="after"))).id)
    updated = await store.update(acked[0], output_tail="done")
    error_after = store.status()["last_error"]
    await store.stop(fast=True)  # the journal alone: as after a crash

    again = TaskStore(paths, TasksSection())
    await again.start()
    report = {
        "acked": acked,
        "refused": refused,
        "messages": messages,
        "journal_ends_whole": journal_ends_whole,
        "refused_in_memory": in_memory,
        "update_refused": update_refused,
        "update_undone": update_undone,
        "error_while_full": error_while_full,
        "error_after": error_after,
        "found": [t for t in acked if again.get(t) is not None],
        "refused_found": [t for t in refused if again.get(t) is not None],
        "tail_after_reopen": getattr(again.get(acked[0]), "output_tail", None),
        "tail_acknowledged": updated.output_tail,
        "recovery": again.recovery,
    }
    await again.stop()
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(Path(sys.argv[1]))), default=str))
