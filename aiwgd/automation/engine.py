"""The automation engine: event -> rule trigger -> conditions -> loop guard -> action.

Two kinds of router subscription, so a failing action is retried and dead-lettered on
its own without ever re-running the matching (or anyone else's action):

- one matcher, "automation", on every event (no retries: matching cannot fail). For
  each enabled rule whose trigger and conditions match, the loop guard (cooldown_s,
  max_per_minute) decides; an accepted execution either waits for approval or is
  handed to the rule's executor with `router.deliver`;
- one executor per rule, "automation:<rule id>", with no patterns and retries on: it
  runs the action. An ActionError makes the router retry it (events.max_retries,
  doubling from events.retry_base_ms), then dead-letter it; `dlq.replay` hands the
  event back to the executor of the same name, which runs the action again.

A template error (a field the event lacks) fails the execution at once: retrying
cannot make the field appear. Reload swaps rules by id: executors of kept rules keep
their queues and pending retries, so no accepted event is lost.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiwgd import errors
from aiwgd.actions.runner import ActionError, ActionRunner, ActionTemplateError
from aiwgd.automation.conditions import explain
from aiwgd.automation.executions import Execution, ExecutionLog
from aiwgd.config.model import Rule
from aiwgd.events.router import Event
from aiwgd.infra.runtime_state import read_section, write_section
from aiwgd.lifecycle import Subsystem

if TYPE_CHECKING:
    from pathlib import Path

    from aiwgd.config import Config
    from aiwgd.events.router import EventRouter, Subscription

log = logging.getLogger("aiwgd.automation")

__all__ = ["Automation"]

MAX_PENDING = 100  # approvals waiting; beyond this, new ones are refused (and counted)
MAX_INFLIGHT = 10_000  # executions handed to executors and not yet finished
TERMINAL_TASK_EVENTS = ("task.completed", "task.failed", "task.timed_out", "task.cancelled")
RUNTIME_KEY = "automation"


@dataclass
class RuleState:
    rule: Rule
    executor: Subscription | None = None
    matched: int = 0
    executed: int = 0
    succeeded: int = 0
    failed: int = 0
    suppressed: int = 0
    last_fired_at: float | None = None
    last_result: str | None = None
    last_mono: float | None = None
    recent: deque[float] = field(default_factory=deque)  # monotonic accept times, 60 s window
    suppress_logged_at: float = 0.0

    def guard(self, now: float) -> str | None:
        """None if the rule may act now (and records it), else why it is held back."""
        rule = self.rule
        if rule.cooldown_s and self.last_mono is not None:
            left = rule.cooldown_s - (now - self.last_mono)
            if left > 0:
                return f"cooldown: {left:.1f}s of {rule.cooldown_s:g}s left"
        while self.recent and now - self.recent[0] >= 60.0:
            self.recent.popleft()
        if len(self.recent) >= rule.max_per_minute:
            return f"max_per_minute: {rule.max_per_minute} executions in the last 60s"
        self.recent.append(now)
        self.last_mono = now
        return None


class Automation(Subsystem):
    name = "automation"

    def __init__(
        self, router: EventRouter, runner: ActionRunner, config: Config,
        state_file: Path | None = None, log_file: Path | None = None,
    ) -> None:  # fmt: skip
        self.router = router
        self.runner = runner
        self.state_file = state_file
        self.enabled = True
        self.overrides: dict[str, bool] = {}  # rule id -> enabled, set over RPC, persisted
        self.rules: dict[str, RuleState] = {}
        self.pending: OrderedDict[str, Execution] = OrderedDict()
        self.inflight: OrderedDict[tuple[str, str], Execution] = OrderedDict()
        self.by_task: OrderedDict[str, Execution] = OrderedDict()
        self.log = ExecutionLog(log_file)
        self._config_rules = list(config.rules)
        self._matcher: Subscription | None = None
        self._tasks: Subscription | None = None
        self.refused_pending = 0

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        if self.state_file is not None:
            saved = read_section(self.state_file, RUNTIME_KEY)
            self.enabled = bool(saved.get("enabled", True))
            rules = saved.get("rules")
            if isinstance(rules, dict):
                self.overrides = {str(k): bool(v) for k, v in rules.items()}
            self._restore_pending(saved.get("pending"))
        self._matcher = self.router.subscribe([], self._match, "automation", retries=False)
        self._set_rules(self._config_rules)
        self._tasks = self.router.subscribe(
            list(TERMINAL_TASK_EVENTS), self._task_done, "automation:tasks", retries=False
        )

    async def stop(self, fast: bool = False) -> None:
        for sub in (self._matcher, self._tasks):
            if sub is not None:
                self.router.unsubscribe(sub)
        for rs in self.rules.values():
            if rs.executor is not None:
                self.router.unsubscribe(rs.executor)
        self.log.close()

    async def apply_config(self, config: Config) -> None:
        self._set_rules(list(config.rules))
        log.info("rules reloaded", extra={"rules": len(self.rules)})

    def _set_rules(self, rules: list[Rule]) -> None:
        """Swap rule definitions by id; executors and counters of kept rules stay."""
        new: dict[str, RuleState] = {}
        for rule in rules:
            rs = self.rules.pop(rule.id, None) or RuleState(rule)
            rs.rule = rule
            if rs.executor is None:
                name = f"automation:{rule.id}"
                rs.executor = self.router.subscribe([], self._executor(rule.id), name)
            new[rule.id] = rs
        for gone in self.rules.values():  # removed from the config
            if gone.executor is not None:
                # Events waiting for a retry go to the dead-letter queue, not nowhere.
                self.router.unsubscribe(gone.executor)
            for key in [k for k in self.inflight if k[0] == gone.rule.id]:
                self.inflight.pop(key).finish("failed", "the rule was removed by a reload")
        self.rules = new
        self._narrow_matcher()

    def _narrow_matcher(self) -> None:
        # The matcher hears only what some enabled rule triggers on: with no rules, the
        # task.* storm of a busy supervisor never wakes it.
        if self._matcher is None:
            return
        triggers = {rs.rule.trigger.type for rs in self.rules.values() if self.rule_enabled(rs)}
        self._matcher.set_patterns(sorted(triggers) if self.enabled else [])

    def status(self) -> dict[str, Any]:
        return {"state": "running" if self.enabled else "disabled", "rules": len(self.rules),
                "pending": len(self.pending), "executions": len(self.log.items)}  # fmt: skip

    # ---- switches ----------------------------------------------------------------------
    def rule_enabled(self, rs: RuleState) -> bool:
        return self.overrides.get(rs.rule.id, rs.rule.enabled)

    def set_enabled(self, enabled: bool, rule_id: str | None = None) -> dict[str, Any]:
        """Switch everything or one rule on/off; persisted so a restart keeps it."""
        if rule_id is None:
            self.enabled = enabled
        else:
            if rule_id not in self.rules:
                raise errors.NotFound(f"no rule with id {rule_id!r} (rules: {self._ids()})")
            self.overrides[rule_id] = enabled
        self._save()
        self._narrow_matcher()
        return {"enabled": self.enabled, "rule_id": rule_id,
                "rule_enabled": None if rule_id is None else enabled}  # fmt: skip

    def _ids(self) -> str:
        return ", ".join(self.rules) or "none configured"

    def _save(self, strict: bool = True) -> None:
        """Persist switches and pending approvals; strict: a disk error fails the RPC."""
        if self.state_file is None:
            return
        pending = [{"id": e.id, "rule_id": e.rule_id, "event": e.event,
                    "created_at": e.created_at} for e in self.pending.values()]  # fmt: skip
        try:
            write_section(self.state_file, RUNTIME_KEY,
                          {"enabled": self.enabled, "rules": self.overrides,
                           "pending": pending})  # fmt: skip
        except OSError as exc:
            log.error("cannot persist automation state", extra={"error": str(exc)})
            if strict:
                raise errors.Unavailable(f"cannot persist the switch: {exc}") from None

    def _restore_pending(self, saved: Any) -> None:
        """Approvals still waiting when the daemon stopped wait again after a restart."""
        for item in saved if isinstance(saved, list) else []:
            try:
                exe = Execution(str(item["rule_id"]), dict(item["event"]), "pending",
                                str(item["id"]), float(item["created_at"]))  # fmt: skip
            except (KeyError, TypeError, ValueError):
                continue  # a damaged entry is dropped, the others still load
            self.pending[exe.id] = exe
            self.log.add(exe)

    # ---- matching ----------------------------------------------------------------------
    async def _match(self, event: Event) -> None:
        if not self.enabled:
            return
        ev = event.to_dict()
        now = time.monotonic()
        for rs in list(self.rules.values()):
            if not self.rule_enabled(rs):
                continue
            matched, _ = explain(rs.rule, ev)
            if not matched:
                continue
            rs.matched += 1
            held = rs.guard(now)
            if held is not None:
                self._suppressed(rs, ev, held, now)
                continue
            self._accept(rs, ev, event)

    def _suppressed(self, rs: RuleState, ev: dict[str, Any], why: str, now: float) -> None:
        rs.suppressed += 1
        # Logged at most every 10 s per rule: a runaway loop must not flood the log.
        if now - rs.suppress_logged_at >= 10.0:
            rs.suppress_logged_at = now
            log.warning("rule held back by its loop guard",
                        extra={"rule_id": rs.rule.id, "event_id": ev.get("id"), "reason": why,
                               "suppressed_total": rs.suppressed})  # fmt: skip

    def _accept(self, rs: RuleState, ev: dict[str, Any], event: Event) -> None:
        exe = Execution(rs.rule.id, ev, action=rs.rule.action.type)
        rs.last_fired_at = exe.created_at
        self.log.add(exe)
        if rs.rule.requires_approval:
            if len(self.pending) >= MAX_PENDING:
                self.refused_pending += 1
                exe.finish("rejected", f"approval list full ({MAX_PENDING} pending)")
                self._finished(rs, exe)
                return
            exe.state = "pending"
            rs.last_result = f"pending approval ({exe.id})"
            self.pending[exe.id] = exe
            self._save(strict=False)
            self.router.publish("automation.pending", {"execution_id": exe.id,
                                "rule_id": rs.rule.id, "event_id": ev.get("id")},
                                "automation")  # fmt: skip
            return
        self._hand_over(rs, exe, event)

    def _hand_over(self, rs: RuleState, exe: Execution, event: Event) -> None:
        """Queue the execution on the rule's executor (which retries on failure)."""
        exe.state = "queued"
        self.inflight[(rs.rule.id, exe.event["id"])] = exe
        while len(self.inflight) > MAX_INFLIGHT:
            self.inflight.popitem(last=False)
        assert rs.executor is not None
        if not self.router.deliver(rs.executor, event):
            self.inflight.pop((rs.rule.id, exe.event["id"]), None)
            exe.finish("failed", "the rule's executor queue is full; event dropped")
            self._finished(rs, exe)

    # ---- execution ---------------------------------------------------------------------
    def _executor(self, rule_id: str) -> Any:
        async def run(event: Event) -> None:
            await self._execute(rule_id, event)

        return run

    async def _execute(self, rule_id: str, event: Event) -> None:
        rs = self.rules.get(rule_id)
        if rs is None:
            return  # the rule was removed by a reload; nothing to do
        key = (rule_id, event.id)
        exe = self.inflight.get(key)
        if exe is None:  # a dead letter replayed by dlq.replay: a new execution
            exe = Execution(rule_id, event.to_dict(), action=rs.rule.action.type)
            self.log.add(exe)
            self.inflight[key] = exe
        exe.attempts += 1
        exe.state = "running"
        meta = {"rule_id": rule_id, "event_id": event.id, "execution_id": exe.id}
        try:
            result = await self.runner.run(rs.rule.action, exe.event, meta, "rule")
        except ActionError as exc:
            hopeless = isinstance(exc, ActionTemplateError)
            if hopeless or exe.attempts > self.router.settings.max_retries:
                self.inflight.pop(key, None)
                exe.finish("failed", str(exc))
                self._finished(rs, exe)
                if hopeless:
                    return  # retrying cannot make a missing field appear: no dead letter
            else:
                exe.state, exe.error = "retrying", str(exc)
            raise  # the router retries, or dead-letters after the last attempt
        self.inflight.pop(key, None)
        exe.result = result
        if result.get("task_id"):
            exe.task_id = str(result["task_id"])
            exe.task_state = result.get("state")
            self.by_task[exe.task_id] = exe
            while len(self.by_task) > MAX_INFLIGHT:
                self.by_task.popitem(last=False)
        exe.finish("succeeded")
        self._finished(rs, exe)

    def _finished(self, rs: RuleState, exe: Execution) -> None:
        if exe.state == "succeeded":
            rs.executed += 1
            rs.succeeded += 1
            rs.last_result = "succeeded" + (f" (task {exe.task_id})" if exe.task_id else "")
        elif exe.state == "failed":
            rs.executed += 1
            rs.failed += 1
            rs.last_result = f"failed: {exe.error}"
            log.warning("rule action failed", extra={"rule_id": rs.rule.id,
                        "execution_id": exe.id, "error": exe.error})  # fmt: skip
        else:
            rs.last_result = f"{exe.state}: {exe.error}" if exe.error else exe.state
        self.log.persist(exe)

    async def _task_done(self, event: Event) -> None:
        task_id = str(event.data.get("id", ""))
        exe = self.by_task.pop(task_id, None)
        if exe is not None:
            exe.task_state = event.type.split(".", 1)[1]

    # ---- approvals ---------------------------------------------------------------------
    def approve(self, execution_id: str) -> dict[str, Any]:
        exe = self._pending(execution_id)
        rs = self.rules.get(exe.rule_id)
        if rs is None:
            exe.finish("rejected", "the rule no longer exists")
            return exe.to_dict()
        self._hand_over(rs, exe, Event.from_dict(exe.event))
        return exe.to_dict()

    def reject(self, execution_id: str, reason: str | None = None) -> dict[str, Any]:
        exe = self._pending(execution_id)
        exe.finish("rejected", reason or "rejected by a user")
        rs = self.rules.get(exe.rule_id)
        if rs is not None:
            self._finished(rs, exe)
        return exe.to_dict()

    def _pending(self, execution_id: str) -> Execution:
        exe = self.pending.pop(execution_id, None)
        if exe is not None:
            self._save(strict=False)
            return exe
        for old in self.log.items:
            if old.id == execution_id:
                raise errors.Conflict(
                    f"execution {execution_id} is not pending (it is {old.state})"
                )
        raise errors.NotFound(f"no pending execution with id {execution_id!r}")
