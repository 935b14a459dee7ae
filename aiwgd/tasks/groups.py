"""Task groups: each named in config `tasks.groups` with its own cap, and paused or not.

The caps are read from the current config at every question, so a reload that changes
one applies at the next start decision. Whether a group is paused is the daemon's own
state (task.pause / task.resume {group}), kept in memory: a restart resumes every group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aiwgd import errors
from aiwgd.config import Config

__all__ = ["Groups"]


class Groups:
    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config
        self._paused: set[str] = set()

    def names(self) -> list[str]:
        return sorted(self._config().tasks.groups)

    def known(self, name: str) -> bool:
        return name in self._config().tasks.groups

    def check(self, name: str, key: str = "group") -> None:
        """InvalidParams (with the key path) unless `name` is a configured group."""
        if not self.known(name):
            have = ", ".join(self.names()) or "none are configured (tasks.groups)"
            raise errors.InvalidParams(
                f'Invalid params: {key}: unknown group "{name}" (groups: {have})',
                {"errors": [f'{key}: unknown group "{name}"']},
            )

    def cap(self, name: str) -> int | None:
        """The group's max_parallel; None for a group no longer configured (a reload
        removed it: its tasks then count only against the global cap)."""
        group = self._config().tasks.groups.get(name)
        return group.max_parallel if group is not None else None

    def paused(self, name: str | None) -> bool:
        return name is not None and name in self._paused

    def pause(self, name: str) -> bool:
        """Pause the group; False if it already was."""
        self.check(name)
        if name in self._paused:
            return False
        self._paused.add(name)
        return True

    def resume(self, name: str) -> bool:
        """Resume the group; False if it was not paused."""
        self.check(name)
        if name not in self._paused:
            return False
        self._paused.discard(name)
        return True

    def stats(self, running: Iterable[str | None], queued: Iterable[str | None]) -> dict[str, Any]:
        """Per configured group: running, queued, max_parallel, paused. `running` and
        `queued` are the groups of the running and the queued tasks."""
        out: dict[str, dict[str, Any]] = {
            name: {
                "running": 0,
                "queued": 0,
                "max_parallel": self.cap(name),
                "paused": name in self._paused,
            }
            for name in self.names()
        }
        for key, groups in (("running", running), ("queued", queued)):
            for name in groups:
                if name in out:
                    out[name][key] += 1
        return out
