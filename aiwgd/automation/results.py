"""What the automation.* methods answer, as types (published by rpc.discover).

An execution is answered as `Execution.to_dict()` builds it (the event replaced by its
id and type, or kept whole for automation.pending), so its schema is generated from
the `Execution` dataclass itself.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, TypedDict

from aiwgd.automation.executions import Execution
from aiwgd.events.model import Event
from aiwgd.rpc.resultschema import With, Without


class EventRef(TypedDict):
    event_id: str | None
    event_type: str | None


ExecutionRecord = Annotated[Execution, Without("event"), With(EventRef)]
PendingExecution = Annotated[Execution, With(EventRef), "with the event it waits to act on"]


class TriggerShown(TypedDict):
    type: str
    source: str | None


class RuleStatus(TypedDict):
    id: str
    description: str
    enabled: Annotated[bool, "in effect now: configured_enabled unless overridden"]
    configured_enabled: bool
    override: Annotated[bool | None, "automation.enable/disable's switch (kept on restart)"]
    trigger: TriggerShown
    conditions: Annotated[int, "how many"]
    action: Annotated[str, "the action type"]
    requires_approval: bool
    cooldown_s: float
    max_per_minute: int
    overlap: str
    counts: Annotated[dict[str, int], "matched, executed, succeeded, failed, ..."]
    running: Annotated[list[str], "what the rule's runs are doing"]
    queued: Annotated[list[str], "executions waiting for the running one"]
    deferred: Annotated[str | None, "an execution held back by cooldown_s"]
    last_fired_at: float | None
    last_result: str | None


class AutomationStatus(TypedDict):
    enabled: bool
    rules: list[RuleStatus]
    pending: Annotated[int, "executions waiting for approval"]
    refused_pending: int


class Switched(TypedDict):
    enabled: Annotated[bool, "the global switch"]
    rule_id: str | None
    rule_enabled: Annotated[bool | None, "the rule's switch (null when switching all)"]


class RuleVerdict(TypedDict):
    rule_id: str
    matched: bool
    enabled: bool
    reasons: Annotated[list[str], "why it would not act"]
    would_run: NotRequired[bool]
    guard: NotRequired[Annotated[str, "what the loop guard would say now"]]
    requires_approval: NotRequired[bool]
    action: NotRequired[Annotated[dict[str, Any], "the action with its templates filled in"]]
    error: NotRequired[str]


class DryRun(TypedDict):
    event: Event
    enabled: bool
    rules: list[RuleVerdict]


class ExecutionList(TypedDict):
    executions: Annotated[list[ExecutionRecord], "newest first"]
    count: int


class PendingList(TypedDict):
    pending: Annotated[list[PendingExecution], "oldest first"]
    count: int
