"""RPC method executor.workers: the `aiwg worker` processes seen on each remote
executor's queue. (Each executor's health is in daemon.status, under the supervisor.)"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from aiwgd import errors
from aiwgd.rpc.registry import Api, NoParams
from aiwgd.tasks.executors.routing import Executors


class WorkerView(TypedDict):
    executor: str
    name: str
    host: str
    pid: int
    state: Annotated[str, "RQ's: idle, busy, suspended, ..."]
    execution: Annotated[str | None, "the attempt it runs: <task id>.<attempt>"]
    task: Annotated[str | None, "the task of that attempt"]
    last_heartbeat: Annotated[str | None, "ISO 8601, UTC"]


class Workers(TypedDict):
    workers: list[WorkerView]
    unreachable: Annotated[dict[str, str], "executor -> why its workers could not be listed"]


def register(api: Api, executors: Executors) -> None:
    @api.method(
        "executor.workers",
        "The workers seen on each remote executor's queue: host, pid, current task, "
        "last heartbeat.",
        NoParams,
        result=Workers,
        raises=(errors.Unavailable,),
    )
    async def workers(ctx: Any, p: NoParams) -> dict[str, Any]:
        found, problems = await executors.workers()
        return {"workers": found, "unreachable": problems}
