"""RPC methods of the automation engine: automation.*."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiwgd import errors
from aiwgd.actions.templates import TemplateError
from aiwgd.automation.conditions import explain
from aiwgd.automation.results import (
    AutomationStatus,
    DryRun,
    ExecutionList,
    ExecutionRecord,
    PendingList,
    Switched,
)
from aiwgd.automation.rulestate import RuleState
from aiwgd.config.schema import spec
from aiwgd.rpc.registry import Api, NoParams

if TYPE_CHECKING:
    from aiwgd.automation.engine import Automation

__all__ = ["register"]


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
    @api.method(
        "automation.status",
        "Whether automation is on, and every rule with its counts, last fire and last result.",
        result=AutomationStatus,
    )
    async def status(ctx: Any, p: NoParams) -> dict[str, Any]:
        return describe(auto)

    @api.method(
        "automation.enable",
        "Switch automation (or one rule) on; survives restarts.",
        RuleRef,
        result=Switched,
        raises=(errors.NotFound,),
    )
    async def enable(ctx: Any, p: RuleRef) -> dict[str, Any]:
        return auto.set_enabled(True, p.rule_id)

    @api.method(
        "automation.disable",
        "Switch automation (or one rule) off; survives restarts.",
        RuleRef,
        result=Switched,
        raises=(errors.NotFound,),
    )
    async def disable(ctx: Any, p: RuleRef) -> dict[str, Any]:
        return auto.set_enabled(False, p.rule_id)

    @api.method(
        "automation.test",
        "Dry run: which rules an event would trigger, why the "
        "others would not, and what each action would do.",
        TestParams,
        result=DryRun,
    )
    async def test(ctx: Any, p: TestParams) -> dict[str, Any]:
        ev = p.event
        when = ev.time if ev.time is not None else time.time()
        event = {"id": ev.id, "type": ev.type, "source": ev.source, "time": when, "data": ev.data}
        return dry_run(auto, event)

    @api.method(
        "automation.log", "Recent rule executions, newest first.", LogParams, result=ExecutionList
    )
    async def log(ctx: Any, p: LogParams) -> dict[str, Any]:
        items = [e.to_dict() for e in auto.log.newest(p.rule_id, p.limit)]
        return {"executions": items, "count": len(items)}

    @api.method(
        "automation.pending", "Executions waiting for approval, oldest first.", result=PendingList
    )
    async def pending(ctx: Any, p: NoParams) -> dict[str, Any]:
        items = [e.to_dict(with_event=True) for e in auto.pending.values()]
        return {"pending": items, "count": len(items)}

    @api.method(
        "automation.approve",
        "Run a pending execution's action now.",
        ExecutionRef,
        result=ExecutionRecord,
        raises=(errors.NotFound, errors.Conflict),
    )
    async def approve(ctx: Any, p: ExecutionRef) -> dict[str, Any]:
        return auto.approve(p.execution_id)

    @api.method(
        "automation.reject",
        "Drop a pending execution without running it.",
        RejectParams,
        result=ExecutionRecord,
        raises=(errors.NotFound, errors.Conflict),
    )
    async def reject(ctx: Any, p: RejectParams) -> dict[str, Any]:
        return auto.reject(p.execution_id, p.reason)


def describe(auto: Automation) -> dict[str, Any]:
    """automation.status: the switch and every rule with its counters."""
    rules = []
    for rs in auto.rules.values():
        r = rs.rule
        rules.append(
            {
                "id": r.id,
                "description": r.description,
                "enabled": auto.rule_enabled(rs),
                "configured_enabled": r.enabled,
                "override": auto.overrides.get(r.id),
                "trigger": {"type": r.trigger.type, "source": r.trigger.source},
                "conditions": len(r.conditions),
                "action": r.action.type,
                "requires_approval": r.requires_approval,
                "cooldown_s": r.cooldown_s,
                "max_per_minute": r.max_per_minute,
                "overlap": r.overlap_policy,
                "counts": rs.counts(),
                "running": rs.gate.labels(),
                "queued": [exe.id for exe, _ in rs.gate.waiting],
                "deferred": rs.deferred.id if rs.deferred is not None else None,
                "last_fired_at": rs.last_fired_at,
                "last_result": rs.last_result,
            }
        )
    return {
        "enabled": auto.enabled,
        "rules": rules,
        "pending": len(auto.pending),
        "refused_pending": auto.refused_pending,
    }


def dry_run(auto: Automation, ev: dict[str, Any]) -> dict[str, Any]:
    """Which rules would act on `ev`, why the others would not, and what they would do."""
    out = []
    now = time.monotonic()
    for rs in auto.rules.values():
        matched, reasons = explain(rs.rule, ev)
        item: dict[str, Any] = {
            "rule_id": rs.rule.id,
            "matched": matched,
            "enabled": auto.rule_enabled(rs),
            "reasons": reasons,
        }
        if matched:
            item["would_run"] = auto.enabled and item["enabled"]
            if not auto.enabled:
                item["reasons"] = ["automation is disabled"]
            elif not item["enabled"]:
                item["reasons"] = ["the rule is disabled"]
            held = _peek_guard(rs, now)
            if held:
                item["guard"] = held
            item["requires_approval"] = rs.rule.requires_approval
            try:
                item["action"] = auto.runner.plan(rs.rule.action, ev)
            except TemplateError as exc:
                item["would_run"] = False
                item["error"] = f"template: {exc}"
        out.append(item)
    return {"event": ev, "enabled": auto.enabled, "rules": out}


def _peek_guard(rs: RuleState, now: float) -> str | None:
    """What the loop guard would say right now, without recording anything."""
    probe = RuleState(rs.rule, last_mono=rs.last_mono, recent=deque(rs.recent))
    held = probe.guard(now)
    return None if held is None else held.reason
