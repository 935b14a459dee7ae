"""The automation engine: event -> trigger -> conditions -> loop guard -> overlap -> action.

Two kinds of router subscription, so a failing action is retried and dead-lettered on
its own without ever re-running the matching (or anyone else's action):

- one matcher, "automation", on the event types that enabled rules trigger on (no
  retries: matching cannot fail). Each enabled rule whose trigger and conditions
  match takes the event through its loop guard (aiwgd.automation.rulestate:
  `max_per_minute` drops, `cooldown_s` delays: the latest trigger it held back is
  tried again when the cooldown ends). An accepted execution waits for approval if
  the rule requires it, then passes the rule's overlap gate (aiwgd.actions.overlap,
  `Rule.overlap_policy`: queue for task actions, allow for the others, unless set):
  it starts now, is skipped, or waits for the run going (one waits: a newer trigger
  supersedes it; `replace` also cancels the running task). A run lasts until its
  action finished, or for a task action until the task ended. Starting a run hands
  the event to the rule's executor with `router.deliver`;
- one executor per rule, "automation:<rule id>", with no patterns and retries on: it
  runs the action (`ActionRunner.attempt`). An ActionError makes the router retry it
  (events.max_retries, doubling from events.retry_base_ms), then dead-letter it;
  `dlq.replay` hands the event back to the executor of the same name, which runs the
  action again (outside the overlap gate: a person asked for it).

A template error (a field the event lacks, a value that would be an option) fails
the execution at once: retrying cannot change the event. A task action's task is
followed ("automation:tasks", aiwgd.actions.outcome.StartedTasks) until it ends, for
the execution's `task_state` and the end of its run. Reload swaps rules by id:
executors of kept rules keep their queues and pending retries, and kept rules their
runs and counters, so no accepted event is lost. The execution log and the counters
are read back from the history file at start (aiwgd.automation.executions).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from aiwgd import errors
from aiwgd.automation.conditions import explain
from aiwgd.automation.executions import Execution, ExecutionLog, ExecutionState
from aiwgd.automation.rulestate import RuleState
from aiwgd.automation.runs import Runs
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
RUNTIME_KEY = "automation"

S = ExecutionState


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
        self.log = ExecutionLog(log_file)
        self.runs = Runs(router, runner, self.log, self.rules_get)
        self._config_rules = list(config.rules)
        self._matcher: Subscription | None = None
        self._restored: dict[str, dict[str, Any]] = {}  # rule id -> counters from history
        self.refused_pending = 0

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self._restored = self.log.load()
        if self.state_file is not None:
            saved = read_section(self.state_file, RUNTIME_KEY)
            self.enabled = bool(saved.get("enabled", True))
            rules = saved.get("rules")
            if isinstance(rules, dict):
                self.overrides = {str(k): bool(v) for k, v in rules.items()}
            self._restore_pending(saved.get("pending"))
        self._matcher = self.router.subscribe([], self._match, "automation", retries=False)
        self._set_rules(self._config_rules)
        self.runs.start()

    async def stop(self, fast: bool = False) -> None:
        if self._matcher is not None:
            self.router.unsubscribe(self._matcher)
        self.runs.stop()
        for rs in self.rules.values():
            rs.cancel_timer()
            if rs.executor is not None:
                self.router.unsubscribe(rs.executor)
        self.log.close()

    async def apply_config(self, config: Config) -> None:
        self._set_rules(list(config.rules))
        log.info("rules reloaded", extra={"rules": len(self.rules)})

    def _set_rules(self, rules: list[Rule]) -> None:
        """Swap rule definitions by id; executors, runs and counters of kept rules stay."""
        new: dict[str, RuleState] = {}
        for rule in rules:
            rs = self.rules.pop(rule.id, None)
            if rs is None:
                rs = RuleState(rule)
                rs.restore(self._restored.pop(rule.id, {}))
            rs.rule = rule
            if rs.executor is None:
                name = f"automation:{rule.id}"
                rs.executor = self.router.subscribe([], self.runs.executor(rule.id), name)
            new[rule.id] = rs
        for gone in self.rules.values():  # removed from the config
            gone.cancel_timer()
            if gone.executor is not None:
                # Events waiting for a retry go to the dead-letter queue, not nowhere.
                self.router.unsubscribe(gone.executor)
            self.runs.forget_rule(gone)
        self.rules = new
        self._narrow_matcher()

    def rules_get(self, rule_id: str) -> RuleState | None:
        return self.rules.get(rule_id)

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
            self._consider(rs, ev, event, now)

    def _consider(
        self, rs: RuleState, ev: dict[str, Any], event: Event, now: float, again: bool = False
    ) -> None:
        """The loop guard's say on a matched event; `again`: a deferred one, counted once."""
        held = rs.guard(now)
        if held is None:
            rs.cancel_timer()  # a deferred trigger is older than this one: it gives way
            self._accept(rs, ev, event)
            return
        if not again:
            self._suppressed(rs, ev, held.reason, now)
        if held.retry_in is not None:
            # The cooldown only delays: the latest trigger it held back runs when it ends,
            # so the last save of a burst is still acted on.
            rs.deferred = event
            if rs.timer is None:
                loop = asyncio.get_running_loop()
                rs.timer = loop.call_later(held.retry_in, self._cooldown_over, rs.rule.id)

    def _cooldown_over(self, rule_id: str) -> None:
        rs = self.rules.get(rule_id)
        if rs is None:
            return
        event, rs.deferred, rs.timer = rs.deferred, None, None
        if event is not None and self.enabled and self.rule_enabled(rs):
            self._consider(rs, event.to_dict(), event, time.monotonic(), again=True)

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
                self.runs.finished(rs, exe)
                return
            rs.last_result = f"pending approval ({exe.id})"
            self.pending[exe.id] = exe
            self._save(strict=False)
            data = {"execution_id": exe.id, "rule_id": rs.rule.id, "event_id": ev.get("id")}
            self.router.publish("automation.pending", data, "automation")
            return
        self.runs.hand_over(rs, exe, event)

    # ---- approvals ---------------------------------------------------------------------
    def approve(self, execution_id: str) -> dict[str, Any]:
        exe = self._pending(execution_id)
        rs = self.rules.get(exe.rule_id)
        if rs is None:
            exe.set_state(S.REJECTED, "the rule no longer exists")
            return exe.to_dict()
        exe.set_state(S.QUEUED)
        self.runs.hand_over(rs, exe, Event.from_dict(exe.event))
        return exe.to_dict()

    def reject(self, execution_id: str, reason: str | None = None) -> dict[str, Any]:
        exe = self._pending(execution_id)
        exe.set_state(S.REJECTED, reason or "rejected by a user")
        rs = self.rules.get(exe.rule_id)
        if rs is not None:
            self.runs.finished(rs, exe)
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
