"""RPC methods of the resource monitor: monitor.processes and monitor.system."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiwgd.monitor.results import Processes, SystemUsage
from aiwgd.rpc.registry import Api, NoParams

if TYPE_CHECKING:
    from aiwgd.monitor.monitor import Monitor

__all__ = ["register"]


def register(api: Api, monitor: Monitor) -> None:
    @api.method(
        "monitor.processes",
        "Every task and service process tree: CPU, memory, files, threads, runtime, "
        "silence, limits and a summary of recent samples.",
        result=Processes,
    )
    async def processes(ctx: Any, p: NoParams) -> dict[str, Any]:
        return {"interval_s": monitor.config.interval_s, "processes": monitor.processes()}

    @api.method(
        "monitor.system",
        "The machine: memory, swap, CPU per core, load average, free disk of the project.",
        result=SystemUsage,
    )
    async def system(ctx: Any, p: NoParams) -> dict[str, Any]:
        return await monitor.system()
