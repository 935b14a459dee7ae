"""The supervisor built and driven in-process, as uvicorn's run_server and arq's burst
worker allow: a real store on disk, the real local executor and real child processes,
no daemon and no socket. This is how a later executor or a new scheduling rule can be
tested without a daemon around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiwgd.config import Config, Paths
from aiwgd.lifecycle import Lifecycle
from aiwgd.monitor.sampler import Sampler
from aiwgd.procs.registry import ChildRegistry
from aiwgd.tasks.executors.local import LocalExecutor
from aiwgd.tasks.executors.routing import Executors, RemoteExecutor
from aiwgd.tasks.store.store import TaskStore
from aiwgd.tasks.supervisor import Supervisor
from tests.taskhelp import prog


@dataclass
class Running:
    supervisor: Supervisor
    children: ChildRegistry
    lifecycle: Lifecycle


def _no_remote(name: str, config: Config) -> RemoteExecutor:
    raise AssertionError(f"no executor {name} is configured here")


@asynccontextmanager
async def supervisor_in(root: Path, cap: int = 2) -> AsyncIterator[Running]:
    config = Config()
    config.daemon.max_parallel_actions = cap
    config.daemon.stop_grace_seconds = 0.5
    paths = Paths(root)
    paths.daemon_dir.mkdir(parents=True, exist_ok=True)
    lifecycle, children = Lifecycle(), ChildRegistry()
    store = TaskStore(paths, config.tasks, None)
    local = LocalExecutor(config, root, lifecycle, children)
    sup = Supervisor(config, root, store, lifecycle, Executors(local, config, _no_remote))
    await store.start()
    await sup.start()
    try:
        yield Running(sup, children, lifecycle)
    finally:
        lifecycle.stopping.set()
        await sup.stop()
        await store.stop()


def test_a_task_runs_to_completion_in_process(project: Path) -> None:
    async def main() -> None:
        async with supervisor_in(project) as r:
            task = await r.supervisor.submit({"command": prog("--say", "hello")}, "test")
            done = await r.supervisor.wait(task["id"], 20)
            assert (done["state"], done["exit_code"]) == ("completed", 0)
            assert "hello" in done["output_tail"]
            assert done["runner"] is None and len(r.children) == 0  # it went with the attempt
            _, log = r.supervisor.log_file(task["id"])
            assert "hello" in Path(log).read_text()

    asyncio.run(main())


def test_cancel_and_the_child_registry_in_process(project: Path) -> None:
    async def main() -> None:
        gate = project / "gate"
        async with supervisor_in(project) as r:
            task = await r.supervisor.submit({"command": prog("--gate", str(gate))}, "test")
            async with asyncio.timeout(10):  # a deadline on the readiness wait
                while r.supervisor.get(task["id"])["state"] != "running" or not r.children:
                    await r.supervisor.changed(task["id"], 0.1)
            assert r.children.owners() == [f"task:{task['id']}"]
            usage = Sampler(r.children).sample()
            assert [(u.owner, u.processes) for u in usage] == [(f"task:{task['id']}", 1)]
            assert usage[0].rss_bytes > 0
            assert r.supervisor.get(task["id"])["runner"]["pid"] == usage[0].pid
            cancelled = await r.supervisor.cancel(task["id"])
            assert cancelled["state"] == "cancelled" and len(r.children) == 0

    asyncio.run(main())
