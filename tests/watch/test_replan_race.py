"""A missing watched path that appears while the watch on its parent is starting.

The watch on the parent starts after the path's creation, so it never reports it: the
watcher must notice the path exists once its watches are up, and plan again. (A real
daemon lost `src/again.py` this way about once in 30 runs of
tests/watch/test_watcher.py::test_deleted_and_recreated_directory_is_watched_again.)
The race is made certain here by creating the directory inside `_start_watches`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiwgd.config import Paths
from aiwgd.config.load import parse_config
from aiwgd.events.router import EventRouter
from aiwgd.watch.watcher import FileWatcher


def test_a_path_that_appears_while_its_parent_watch_starts_is_picked_up(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        (tmp_path / ".aiwg").mkdir()
        config = parse_config({"watch": {"debounce_ms": 50, "paths": [{"path": "src/"}]}})
        router = EventRouter()
        events: list[dict[str, Any]] = []
        got = asyncio.Event()

        async def handler(event: Any) -> None:
            events.append(event.to_dict())
            got.set()

        router.subscribe(["file.*"], handler, "test")
        watcher = FileWatcher(router, Paths(tmp_path), config)
        real_start = watcher._start_watches
        raced = False

        async def start_watches() -> None:
            nonlocal raced
            if not raced and watcher.plan.missing:
                raced = True  # src/ appears between the plan and its parent's watch
                (tmp_path / "src").mkdir()
                (tmp_path / "src" / "again.py").write_text("x")
            await real_start()

        watcher._start_watches = start_watches  # type: ignore[method-assign]
        await watcher.start()
        try:
            await asyncio.wait_for(got.wait(), 10)
            assert raced
            assert [(e["type"], e["data"]["path"]) for e in events] == [
                ("file.created", "src/again.py")
            ]
            assert watcher.status()["missing"] == []
        finally:
            await watcher.stop()

    asyncio.run(main())
