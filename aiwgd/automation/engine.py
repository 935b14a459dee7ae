"""The automation engine: event -> rule trigger -> conditions -> loop guard -> action.

Two kinds of router subscription, so a failing action is retried and dead-lettered on
its own without ever re-running the matching (or anyone else's action):

- one matcher, "automation", on the event types that enabled rules trigger on (no
  retries: matching cannot fail). For each enabled rule whose trigger and conditions
  match, the loop guard (cooldown_s, max_per_minute) decides; an accepted execution
  either waits for approval or is handed to the rule's executor with `router.deliver`;
- one executor per rule, "automation:<rule id>", with no patterns and retries on: it
  runs the action (`ActionRunner.attempt`). An ActionError makes the router retry it
  (events.max_retries, doubling from events.retry_base_ms), then dead-letter it;
  `dlq.replay` hands the event back to the executor of the same name, which runs the
  action again.

A template error (a field the event lacks) fails the execution at once: retrying
cannot make the field appear. A task action's task is followed ("automation:tasks",
aiwgd.actions.outcome.StartedTasks) until it ends, for the execution's `task_state`.
Reload swaps rules by id: executors of kept rules keep their queues and pending
retries, so no accepted event is lost.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiwgd import errors
from aiwgd.actions.outcome import Outcome, StartedTasks, Verdict
from aiwgd.automation.conditions import explain
from aiwgd.automation.executions import Execution, ExecutionLog, ExecutionState
from aiwgd.config.model import Rule
from aiwgd.events.model import Event
from aiwgd.infra.runtime_state import read_section, write_section
from aiwgd.lifecycle import Subsystem

if TYPE_CHECKING:
    from pathlib import Path

    from aiwgd.actions.runner import ActionRunner
    from aiwgd.config import Config
    from aiwgd.events.router import EventRouter, Subscription

log = logging.getLogger("aiwgd.automation")

__all__ = ["Automation"]

MAX_PENDING = 100  # approvals waiting; beyond this, new ones are refused (and counted)
MAX_INFLIGHT = 10_000  # executions handed to executors and not yet finished; tasks followed
RUNTIME_KEY = "automation"

S = ExecutionState


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
        self,
        router: EventRouter,
        runner: ActionRunner,
        config: Config,
        state_file: Path | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.router = router
        self.runner = runner
        self.state_file = state_file
        self.enabled = True
        self.overrides: dict[str, bool] = {}  # rule id -> enabled, set over RPC, persisted
        self.rules: dict[str, RuleState] = {}
        self.pending: OrderedDict[str, Execution] = OrderedDict()
        self.inflight: OrderedDict[tuple[str, str], Execution] = OrderedDict()
        # The tasks that succeeded executions submitted, until they end.
        self.tasks: StartedTasks[Execution] = StartedTasks(
            router, "automation:tasks", "rule", self._task_ended, limit=MAX_INFLIGHT
        )
        self.log = ExecutionLog(log_file)
        self._config_rules = list(config.rules)
        self._matcher: Subscription | None = None
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
        self.tasks.start()

    async def stop(self, fast: bool = False) -> None:
        if self._matcher is not None:
            self.router.unsubscribe(self._matcher)
        self.tasks.stop()
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
                self.inflight.pop(key).set_state(S.FAILED, "the rule was removed by a reload")
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
        return {
            "state": "running" if self.enabled else "disabled",
            "rules": len(self.rules),
            "pending": len(self.pending),
            "executions": len(self.log.items),
        }

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
        return {
            "enabled": self.enabled,
            "rule_id": rule_id,
            "rule_enabled": None if rule_id is None else enabled,
        }

    def _ids(self) -> str:
        return ", ".join(self.rules) or "none configured"

    def _save(self, strict: bool = True) -> None:
        """Persist switches and pending approvals; strict: a disk error fails the RPC."""
        if self.state_file is None:
            return
        pending = [
            {"id": e.id, "rule_id": e.rule_id, "event": e.event, "created_at": e.created_at}
            for e in self.pending.values()
        ]
        saved = {"enabled": self.enabled, "rules": self.overrides, "pending": pending}
        try:
            write_section(self.state_file, RUNTIME_KEY, saved)
        except OSError as exc:
            log.error("cannot persist automation state", extra={"error": str(exc)})
            if strict:
                raise errors.Unavailable(f"cannot persist the switch: {exc}") from None

    def _restore_pending(self, saved: Any) -> None:
        """Approvals still waiting when the daemon stopped wait again after a restart."""
        for item in saved if isinstance(saved, list) else []:
            try:
                exe = Execution(
                    str(item["rule_id"]),
                    dict(item["event"]),
                    S.PENDING,
                    str(item["id"]),
                    float(item["created_at"]),
                )
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
            fields = {
                "rule_id": rs.rule.id,
                "event_id": ev.get("id"),
                "reason": why,
                "suppressed_total": rs.suppressed,
            }
            log.warning("rule held back by its loop guard", extra=fields)

    def _accept(self, rs: RuleState, ev: dict[str, Any], event: Event) -> None:
        gated = rs.rule.requires_approval
        exe = Execution(
            rs.rule.id, ev, S.PENDING if gated else S.QUEUED, action=rs.rule.action.type
        )
        rs.last_fired_at = exe.created_at
        self.log.add(exe)
        if gated:
            if len(self.pending) >= MAX_PENDING:
                self.refused_pending += 1
                exe.set_state(S.REJECTED, f"approval list full ({MAX_PENDING} pending)")
                self._finished(rs, exe)
                return
            rs.last_result = f"pending approval ({exe.id})"
            self.pending[exe.id] = exe
            self._save(strict=False)
            data = {"execution_id": exe.id, "rule_id": rs.rule.id, "event_id": ev.get("id")}
            self.router.publish("automation.pending", data, "automation")
            return
        self._hand_over(rs, exe, event)

    def _hand_over(self, rs: RuleState, exe: Execution, event: Event) -> None:
        """Deliver a queued execution's event to the rule's executor (retries on failure)."""
        self.inflight[(rs.rule.id, exe.event["id"])] = exe
        while len(self.inflight) > MAX_INFLIGHT:
            self.inflight.popitem(last=False)
        assert rs.executor is not None
        if not self.router.deliver(rs.executor, event):
            self.inflight.pop((rs.rule.id, exe.event["id"]), None)
            exe.set_state(S.FAILED, "the rule's executor queue is full; event dropped")
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
        exe.set_state(S.RUNNING)
        meta = {"rule_id": rule_id, "event_id": event.id, "execution_id": exe.id}
        out = await self.runner.attempt(rs.rule.action, exe.event, meta, "rule", exe.attempts)
        if out.verdict is Verdict.RETRY:
            exe.set_state(S.RETRYING, str(out.error))
        else:
            self.inflight.pop(key, None)
            if out.verdict is Verdict.SUCCEEDED:
                self._succeeded(exe, out)
            else:
                exe.set_state(S.FAILED, str(out.error))
            self._finished(rs, exe)
        # Raises a failure: the router retries it, or dead-letters it after the last
        # attempt; a hopeless one (a missing field) is not dead-lettered.
        out.hand_back()

    def _succeeded(self, exe: Execution, out: Outcome) -> None:
        exe.result = out.result
        exe.task_id = out.task_id
        if exe.task_id is not None:
            exe.task_state = out.result.get("state")
            ended = self.tasks.track(exe.task_id, exe)
            if ended is not None:
                exe.task_state = ended
        exe.set_state(S.SUCCEEDED)

    def _finished(self, rs: RuleState, exe: Execution) -> None:
        if exe.state is S.SUCCEEDED:
            rs.executed += 1
            rs.succeeded += 1
            rs.last_result = "succeeded" + (f" (task {exe.task_id})" if exe.task_id else "")
        elif exe.state is S.FAILED:
            rs.executed += 1
            rs.failed += 1
            rs.last_result = f"failed: {exe.error}"
            fields = {"rule_id": rs.rule.id, "execution_id": exe.id, "error": exe.error}
            log.warning("rule action failed", extra=fields)
        else:
            rs.last_result = f"{exe.state}: {exe.error}" if exe.error else str(exe.state)
        self.log.persist(exe)

    def _task_ended(self, exe: Execution, task_id: str, state: str) -> None:
        exe.task_state = state

    # ---- approvals ---------------------------------------------------------------------
    def approve(self, execution_id: str) -> dict[str, Any]:
        exe = self._pending(execution_id)
        rs = self.rules.get(exe.rule_id)
        if rs is None:
            exe.set_state(S.REJECTED, "the rule no longer exists")
            return exe.to_dict()
        exe.set_state(S.QUEUED)
        self._hand_over(rs, exe, Event.from_dict(exe.event))
        return exe.to_dict()

    def reject(self, execution_id: str, reason: str | None = None) -> dict[str, Any]:
        exe = self._pending(execution_id)
        exe.set_state(S.REJECTED, reason or "rejected by a user")
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
