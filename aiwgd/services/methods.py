"""RPC methods of the services subsystem: service.*.

`name` is a service (all its instances), one instance (`web:1`) or `all`. `service.logs`
answers the last lines kept in memory; the CLI's `-f` polls it (`total` says how many
lines were ever seen, so a poller knows what is new).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiwgd import errors
from aiwgd.config.schema import spec
from aiwgd.config.services import signal_number
from aiwgd.rpc.registry import Api, NoParams
from aiwgd.services.logs import KEEP_LINES
from aiwgd.services.results import (
    ServiceAction,
    ServiceGet,
    ServiceList,
    ServiceLogs,
    Signalled,
)

if TYPE_CHECKING:
    from aiwgd.services.manager import Services

__all__ = ["register"]


def _sig(value: str) -> str | None:
    return None if signal_number(value) is not None else "is not a signal name (e.g. HUP, USR1)"


@dataclass
class NameParams:
    name: str = spec(min_len=1, max_len=300, doc="a service, an instance (web:1) or all")


@dataclass
class OneParams:
    name: str = spec(min_len=1, max_len=300, doc="a service or an instance (web:1)")


@dataclass
class SignalParams:
    name: str = spec(min_len=1, max_len=300, doc="a service, an instance (web:1) or all")
    signal: str = spec(min_len=1, max_len=20, check=_sig, doc="a signal name: HUP, USR1, TERM")


@dataclass
class LogsParams:
    name: str = spec(min_len=1, max_len=300, doc="a service or an instance (web:1)")
    lines: int = spec(100, ge=0, le=KEEP_LINES, doc="how many of the last lines")


def register(api: Api, services: Services) -> None:
    @api.method(
        "service.list",
        "Every service instance: state, pid, uptime, restarts, health.",
        result=ServiceList,
    )
    async def list_(ctx: Any, p: NoParams) -> dict[str, Any]:
        out = [services.brief(i) for i in services.all_instances()]
        return {"services": out, "recovered": services.recovered}

    @api.method(
        "service.get",
        "One service (each instance) with its restart history and last exit.",
        OneParams,
        result=ServiceGet,
        raises=(errors.NotFound,),
    )
    async def get(ctx: Any, p: OneParams) -> dict[str, Any]:
        return {"instances": [services.describe(i) for i in services.select(p.name)]}

    @api.method(
        "service.start",
        "Start (a start by hand lifts a gave_up and the start limit).",
        NameParams,
        result=ServiceAction,
        raises=(errors.NotFound,),
    )
    async def start(ctx: Any, p: NameParams) -> dict[str, Any]:
        return {"instances": services.start_by_hand(p.name)}

    @api.method(
        "service.stop",
        "Stop down the ladder (stop_signal, grace, SIGKILL); answers once all is gone.",
        NameParams,
        result=ServiceAction,
        raises=(errors.NotFound,),
    )
    async def stop(ctx: Any, p: NameParams) -> dict[str, Any]:
        return {"instances": await services.stop_by_hand(p.name)}

    @api.method(
        "service.restart",
        "Stop and start again at once (no backoff); starts a stopped one.",
        NameParams,
        result=ServiceAction,
        raises=(errors.NotFound,),
    )
    async def restart(ctx: Any, p: NameParams) -> dict[str, Any]:
        return {"instances": services.restart_by_hand(p.name)}

    @api.method(
        "service.signal",
        "Send a signal to each running instance's process group.",
        SignalParams,
        result=Signalled,
        raises=(errors.NotFound, errors.Conflict),
    )
    async def send(ctx: Any, p: SignalParams) -> dict[str, Any]:
        sig = signal_number(p.signal)
        assert sig is not None  # checked by SignalParams
        return {"signalled": services.send(p.name, sig)}

    @api.method(
        "service.logs",
        "The last lines of a service's output (kept in memory; the file has the rest).",
        LogsParams,
        result=ServiceLogs,
        raises=(errors.NotFound,),
    )
    async def logs(ctx: Any, p: LogsParams) -> dict[str, Any]:
        return services.logs(p.name, p.lines)
