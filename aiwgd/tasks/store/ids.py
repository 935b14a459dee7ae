"""Task ids that are never issued twice, even after tasks.json is lost or damaged.

aiwgd.tasks.IdGenerator makes ids from a millisecond counter floored above every id
seen. The stored tasks are one source of that floor; `tasks.ids` is the other, kept in
its own small file: before an id beyond the reserved block is handed out, a new block
(one minute of the clock) is reserved there durably. A damaged snapshot therefore
cannot lower the floor, and the file is written about once a minute, not per task.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Container
from pathlib import Path

from aiwgd.infra.durable import write_json_atomic
from aiwgd.tasks.model import IdGenerator

log = logging.getLogger("aiwgd.taskids")

RESERVE_MS = 60_000
ABOUT = "every task id issued so far is below this floor (base 36, without the suffix)"


class TaskIds:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.gen = IdGenerator()
        self.reserved = 0  # counters below this are durably reserved in the file

    def load(self) -> str:
        """Raise the floor to the reserved block; returns "ok", "missing" or why not."""
        try:
            floor = json.loads(self.path.read_text())["floor"]
            if not isinstance(floor, int) or isinstance(floor, bool):
                raise ValueError("floor is not an integer")
        except FileNotFoundError:
            return "missing"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # The ids seen in tasks.json, the journal and the clock still apply.
            log.warning(
                "task id file unreadable; ignored",
                extra={"file": str(self.path), "error": str(exc)},
            )
            return f"unreadable: {exc}"
        self.gen.last = max(self.gen.last, floor)
        return "ok"

    def observe(self, task_id: str) -> None:
        self.gen.observe(task_id)

    def new(self, taken: Container[str]) -> str:
        """A fresh id not in `taken`; raises OSError if the reservation cannot be written."""
        task_id = self.gen.new()
        while task_id in taken:
            task_id = self.gen.new()
        if self.gen.last >= self.reserved:
            floor = self.gen.last + RESERVE_MS
            write_json_atomic(self.path, {"floor": floor, "about": ABOUT})
            self.reserved = floor
        return task_id
