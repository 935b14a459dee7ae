"""RPC methods of the hung-process watchdog: watchdog.*."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiwgd.config.schema import spec
from aiwgd.rpc.registry import Api, NoParams
from aiwgd.watchdog.results import Kills, WatchdogList

if TYPE_CHECKING:
    from aiwgd.watchdog.watchdog import Watchdog

__all__ = ["register"]


@dataclass
class KillsParams:
    limit: int = spec(100, ge=1, le=10_000, doc="at most this many records, newest first")


def register(api: Api, watchdog: Watchdog) -> None:
    @api.method(
        "watchdog.list",
        "Processes the watchdog's rules match, each with its age and verdict "
        '("ok (3 min of 5 min)", "hung", "killed", "spared: daemon child"); scans now '
        "when the last scan is over a second old.",
        result=WatchdogList,
    )
    async def list_candidates(ctx: Any, p: NoParams) -> dict[str, Any]:
        return await watchdog.candidates()

    @api.method(
        "watchdog.kills",
        "The kill log (.aiwg/daemon/kills.jsonl): what the watchdog and resource limits "
        "killed and why, newest first.",
        KillsParams,
        result=Kills,
    )
    async def kills(ctx: Any, p: KillsParams) -> dict[str, Any]:
        return {"kills": await watchdog.kill_log(p.limit)}
