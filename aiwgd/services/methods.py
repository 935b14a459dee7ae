"""RPC methods of the services subsystem: service.*.

`name` is a service (all its instances), one instance (`web:1`) or `all`. `service.logs`
answers the last lines kept in memory; with `follow: true` it then sends each new line
on the same connection (`service.output` notifications, see services.logs.LineFollow)
until the connection closes or the followed instances are gone.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiwgd import errors
from aiwgd.config.schema import spec
from aiwgd.config.services import signal_number
from aiwgd.rpc.registry import Api, NoParams
from aiwgd.services.logs import KEEP_LINES, LineFollow
from aiwgd.services.results import (
    ServiceAction,
    ServiceGet,
    ServiceList,
    ServiceLogs,
    Signalled,
)

if TYPE_CHECKING:
    from aiwgd.services.instance import Instance
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
    follow: bool = spec(False, doc="then send new lines as service.output notifications")


# As events.subscribe: each follow holds a task and a queue, so a connection gets a few.
MAX_FOLLOWS_PER_CONNECTION = 64


class Follows:
    """The open follows, by id, with the connection that owns each."""

    def __init__(self) -> None:
        self.by_id: dict[str, tuple[Any, LineFollow]] = {}
        self._ids = itertools.count(1)

    def add(self, conn: Any, name: str, insts: list[Instance]) -> str:
        owned = sum(1 for c, _ in self.by_id.values() if c is conn)
        if owned >= MAX_FOLLOWS_PER_CONNECTION:
            raise errors.LimitExceeded(
                f"Limit exceeded: a connection may follow {MAX_FOLLOWS_PER_CONNECTION} "
                "service logs at once; open another connection"
            )
        sid = f"follow-{next(self._ids)}"
        follow = LineFollow(sid, name, conn.notify, lambda: self.remove(sid))
        follow.watch({i.name: i.log for i in insts})
        self.by_id[sid] = (conn, follow)
        conn.on_close(lambda: self.remove(sid))
        return sid

    def remove(self, sid: str) -> None:
        entry = self.by_id.pop(sid, None)
        if entry is not None:
            entry[1].stop()


def register(api: Api, services: Services) -> None:
    follows = Follows()

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
        "The last lines of a service's output (kept in memory; the file has the rest); "
        "follow: then each new line, as service.output notifications on this connection.",
        LogsParams,
        result=ServiceLogs,
        raises=(errors.NotFound, errors.LimitExceeded),
    )
    async def logs(ctx: Any, p: LogsParams) -> dict[str, Any]:
        # No await from the tail to the follow's start: no line falls between the two.
        picked = services.select(p.name)
        out = services.logs(p.name, p.lines)
        if p.follow:
            out["subscription_id"] = follows.add(ctx.conn, p.name, picked)
            out["following"] = True
        out["followers"] = sum(len(i.log.followers) for i in picked)
        return out
