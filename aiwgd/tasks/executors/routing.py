"""The supervisor's one executor: the local one, and a remote one per `executors` entry.

A task's `executor` (decided at submit, tasks.executors.choice) says where every one of
its attempts runs: None is the daemon itself (LocalExecutor), a name is an entry of
config `executors` (aiwgd.remote's RqExecutor, made by the factory given here, so the
daemon imports rq and redis only when one is configured). A remote attempt outlives a
daemon stop (it detaches) and is re-attached at the next start instead of being
recovered as interrupted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from aiwgd import errors
from aiwgd.config import Config
from aiwgd.config.executors import LOCAL
from aiwgd.tasks.executors.base import Attempt, Executor, SpawnError
from aiwgd.tasks.model import Task

log = logging.getLogger("aiwgd.supervisor")


class RemoteExecutor(Executor, Protocol):
    async def check(self) -> None:
        """Raise errors.Unavailable (saying why) unless its Redis answers."""
        ...

    async def reattach(
        self, task: Task, log_path: str, on_output: Callable[[], None]
    ) -> Attempt: ...

    def health(self) -> dict[str, Any]: ...

    async def workers(self) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...

    def set_current(self, current: Callable[[str], int | None]) -> None: ...


MakeRemote = Callable[[str, Config], RemoteExecutor]


class Executors:
    name = "executors"

    def __init__(self, local: Executor, config: Config, make_remote: MakeRemote) -> None:
        self.local = local
        self.config = config
        self._make = make_remote
        self.remote: dict[str, RemoteExecutor] = {}
        self._current: Callable[[str], int | None] = lambda _task_id: None
        self._build(config)

    def _build(self, config: Config) -> None:
        for name in config.executors:
            if name not in self.remote:
                ex = self.remote[name] = self._make(name, config)
                ex.set_current(self._current)

    def set_current(self, current: Callable[[str], int | None]) -> None:
        """task id -> the attempt the supervisor runs now (None if not running):
        what a remote executor checks a late result against."""
        self._current = current
        for ex in self.remote.values():
            ex.set_current(current)

    def cap(self, executor: str | None) -> int:
        """How many attempts may run on `executor` at once."""
        if executor is None:
            return self.config.daemon.max_parallel_actions
        cfg = self.config.executors.get(executor)
        return cfg.max_parallel if cfg is not None else 0  # removed by a reload: none start

    def _remote(self, task: Task) -> RemoteExecutor:
        assert task.executor is not None
        ex = self.remote.get(task.executor)
        if ex is None:
            raise SpawnError(f"executor {task.executor} is not configured any more")
        return ex

    async def admit(self, task: Task) -> None:
        """At submit: a task for a remote executor is refused (Unavailable) while its
        Redis cannot be reached, unless that executor waits for it (on_unreachable)."""
        if task.executor is None:
            return
        cfg = self.config.executors.get(task.executor)
        ex = self.remote.get(task.executor)
        if cfg is None or ex is None:
            raise errors.InvalidParams(
                f"Invalid params: executor: unknown executor {task.executor}"
            )
        if cfg.on_unreachable == "error":
            await ex.check()

    # ---- the Executor protocol -------------------------------------------------------
    async def start(self, task: Task, log_path: str, on_output: Callable[[], None]) -> Attempt:
        if task.executor is None:
            return await self.local.start(task, log_path, on_output)
        return await self._remote(task).start(task, log_path, on_output)

    def reattachable(self, task: Task) -> bool:
        return task.executor is not None and task.executor in self.remote

    async def reattach(self, task: Task, log_path: str, on_output: Callable[[], None]) -> Attempt:
        return await self._remote(task).reattach(task, log_path, on_output)

    async def recover(self, task: Task) -> list[int]:
        if task.executor is None:
            return await self.local.recover(task)
        ex = self.remote.get(task.executor)
        return await ex.recover(task) if ex is not None else []

    async def sweep(self) -> dict[str, list[int]]:
        return await self.local.sweep()  # a remote worker sweeps its own host at its start

    def apply_config(self, config: Config) -> None:
        self.config = config
        self.local.apply_config(config)
        self._build(config)
        for name, ex in self.remote.items():
            if name in config.executors:
                ex.apply_config(config)
            # An executor a reload removed keeps serving the attempts it has (it is
            # closed at the daemon's stop); cap() lets no new one start on it.

    # ---- status --------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {LOCAL: {"type": "local", "ok": True}}
        for name, ex in self.remote.items():
            if name in self.config.executors:
                out[name] = ex.health()
        return out

    async def workers(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Every remote executor's workers, and why an executor's could not be listed."""
        found: list[dict[str, Any]] = []
        problems: dict[str, str] = {}
        for name, ex in self.remote.items():
            try:
                rows = await ex.workers()
            except errors.RpcError as exc:
                problems[name] = exc.message
                continue
            found.extend({**row, "executor": name} for row in rows)
        return found, problems

    async def close(self) -> None:
        for ex in self.remote.values():
            try:
                await ex.close()
            except Exception:
                log.exception("executor not closed cleanly", extra={"executor": ex.name})
