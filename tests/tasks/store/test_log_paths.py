"""Each task's log name is new, and naming it must not keep memory for good.

On Python 3.12 a parsed pathlib.Path interns its parts, and interned strings there are
immortal: building each task's log path as a Path kept ~55 bytes a task for the life of
the daemon (tracemalloc showed one string per task ever submitted). The store and the
output sink now keep these paths as str.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from aiwgd.config import Paths
from aiwgd.config.tasks import TasksSection
from aiwgd.procs.output import OutputSink, ring_path
from aiwgd.tasks.store.store import TaskStore


def test_naming_task_logs_keeps_nothing(tmp_path: Path) -> None:
    store = TaskStore(Paths(tmp_path), TasksSection())

    def name_and_write(n: int, start: int) -> None:
        for i in range(start, start + n):
            path = store.log_path(f"t-{i:08d}-unique")
            sink = OutputSink(path, cap=64, tail_bytes=16)
            sink.feed(b"x" * 100)  # past the cap: the ring file beside the log is used
            sink.close()
            assert str(ring_path(path)).endswith(".log.tail")

    name_and_write(50, 0)  # warm: first-use caches, the logs folder
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        name_and_write(1000, 50)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 20_000, f"{kept} bytes kept after naming 1,000 task logs"
    assert store.log_path("t-1") == str(Paths(tmp_path).task_logs_dir / "t-1.log")
