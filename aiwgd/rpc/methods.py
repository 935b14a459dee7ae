"""The daemon-level RPC methods: ping, daemon.status|stop|reload, rpc.discover."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from aiwgd import errors
from aiwgd.config.schema import spec
from aiwgd.rpc.registry import Api, NoParams
from aiwgd.rpc.results import DaemonStatus, OpenRpcDocument, Pong, Reloaded, Stopping


class DaemonControl(Protocol):
    """What these methods need of the daemon (and nothing more)."""

    pid: int

    def status(self) -> dict[str, Any]: ...

    def request_stop(self, fast: bool = False, reason: str = "") -> None: ...

    async def reload(self) -> dict[str, Any]: ...


@dataclass
class StopParams:
    fast: bool = spec(False, doc="skip the grace period: stop ladder at once")


def register(api: Api, daemon: DaemonControl) -> None:
    """ping, daemon.*, rpc.discover."""

    @api.method("ping", 'Liveness check; answers "pong".', result=Pong)
    async def ping(ctx: Any, p: NoParams) -> Pong:
        return "pong"

    @api.method(
        "daemon.status", "Pid, uptime, config state and every subsystem.", result=DaemonStatus
    )
    async def status(ctx: Any, p: NoParams) -> dict[str, Any]:
        return daemon.status()

    @api.method(
        "daemon.stop",
        "Stop gracefully (or fast); answers before stopping.",
        StopParams,
        result=Stopping,
    )
    async def stop(ctx: Any, p: StopParams) -> Stopping:
        daemon.request_stop(fast=p.fast, reason="rpc")
        return {"stopping": True, "pid": daemon.pid}

    @api.method(
        "daemon.reload",
        "Re-read and apply the config file; a bad file changes nothing.",
        result=Reloaded,
        raises=(errors.ConfigInvalid,),
    )
    async def reload(ctx: Any, p: NoParams) -> dict[str, Any]:
        return await daemon.reload()

    @api.method("rpc.discover", "This API as an OpenRPC document.", result=OpenRpcDocument)
    async def discover(ctx: Any, p: NoParams) -> OpenRpcDocument:
        return api.discover()
