"""RPC methods of the automation engine: automation.*."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiwgd import errors
from aiwgd.api import Api, NoParams
from config.schema import spec

if TYPE_CHECKING:
    from aiwgd.automation import Automation

__all__ = ["register"]

OBJ = {"type": "object"}


@dataclass
class RuleRef:
    rule_id: str | None = spec(None, min_len=1, doc="one rule; omit to switch all automation")


@dataclass
class TestEvent:
    type: str = spec(min_len=1, doc="event type, e.g. file.modified")
    data: dict[str, Any] = spec(factory=dict)
    source: str = "rpc"
    id: str = "ev-test"
    time: float | None = None


@dataclass
class TestParams:
    event: TestEvent = spec(doc="the event to try every rule against (nothing runs)")


@dataclass
class LogParams:
    rule_id: str | None = spec(None, min_len=1)
    limit: int = spec(50, ge=1, le=1000)


@dataclass
class ExecutionRef:
    execution_id: str = spec(min_len=1)


@dataclass
class RejectParams:
    execution_id: str = spec(min_len=1)
    reason: str | None = spec(None, max_len=1000)


def register(api: Api, auto: Automation) -> None:
    @api.method("automation.status", "Whether automation is on, and every rule with its "
                "counts, last fire and last result.", result=OBJ)  # fmt: skip
    async def status(ctx: Any, p: NoParams) -> dict[str, Any]:
        return auto.describe()

    @api.method("automation.enable", "Switch automation (or one rule) on; survives restarts.",
                RuleRef, result=OBJ, raises=(errors.NotFound,))  # fmt: skip
    async def enable(ctx: Any, p: RuleRef) -> dict[str, Any]:
        return auto.set_enabled(True, p.rule_id)

    @api.method("automation.disable", "Switch automation (or one rule) off; survives restarts.",
                RuleRef, result=OBJ, raises=(errors.NotFound,))  # fmt: skip
    async def disable(ctx: Any, p: RuleRef) -> dict[str, Any]:
        return auto.set_enabled(False, p.rule_id)

    @api.method("automation.test", "Dry run: which rules an event would trigger, why the "
                "others would not, and what each action would do.", TestParams,
                result=OBJ)  # fmt: skip
    async def test(ctx: Any, p: TestParams) -> dict[str, Any]:
        ev = p.event
        when = ev.time if ev.time is not None else time.time()
        event = {"id": ev.id, "type": ev.type, "source": ev.source, "time": when, "data": ev.data}
        return auto.dry_run(event)

    @api.method("automation.log", "Recent rule executions, newest first.", LogParams,
                result=OBJ)  # fmt: skip
    async def log(ctx: Any, p: LogParams) -> dict[str, Any]:
        items = [e.to_dict() for e in auto.log.newest(p.rule_id, p.limit)]
        return {"executions": items, "count": len(items)}

    @api.method("automation.pending", "Executions waiting for approval, oldest first.",
                result=OBJ)  # fmt: skip
    async def pending(ctx: Any, p: NoParams) -> dict[str, Any]:
        items = [e.to_dict(with_event=True) for e in auto.pending.values()]
        return {"pending": items, "count": len(items)}

    @api.method("automation.approve", "Run a pending execution's action now.", ExecutionRef,
                result=OBJ, raises=(errors.NotFound, errors.Conflict))  # fmt: skip
    async def approve(ctx: Any, p: ExecutionRef) -> dict[str, Any]:
        return auto.approve(p.execution_id)

    @api.method("automation.reject", "Drop a pending execution without running it.",
                RejectParams, result=OBJ, raises=(errors.NotFound, errors.Conflict))  # fmt: skip
    async def reject(ctx: Any, p: RejectParams) -> dict[str, Any]:
        return auto.reject(p.execution_id, p.reason)
