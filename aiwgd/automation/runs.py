"""Rule runs: the overlap gate, the rule executors, and how each execution ends.

The engine (aiwgd.automation.engine) decides which events a rule accepts; from there
on an execution is this module's: `hand_over()` takes it through the rule's overlap
gate (aiwgd.actions.overlap), `_start()` delivers its event to the rule's executor
subscription, `_execute()` runs the action (retried by the router), `finished()`
counts and records the outcome, and the end of a run (the action done, or its task
ended: StartedTasks "automation:tasks") starts what waited for it. `replace` cancels
the running run's task through the action runner, in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiwgd.actions.outcome import Outcome, StartedTasks, Verdict
from aiwgd.actions.overlap import Admission
from aiwgd.automation.executions import Execution, ExecutionLog, ExecutionState
from aiwgd.events.model import Event

if TYPE_CHECKING:
    from aiwgd.actions.runner import ActionRunner
    from aiwgd.automation.rulestate import RuleState
    from aiwgd.events.router import EventRouter

log = logging.getLogger("aiwgd.automation")

__all__ = ["MAX_INFLIGHT", "Runs"]

MAX_INFLIGHT = 10_000  # executions handed to executors and not yet finished; tasks followed

S = ExecutionState


class Runs:
    """The executions handed over, the runs going, and the tasks they started."""

    def __init__(
        self,
        router: EventRouter,
        runner: ActionRunner,
        history: ExecutionLog,
        rule: Callable[[str], RuleState | None],
    ) -> None:
        self.router = router
        self.runner = runner
        self.log = history
        self.rule = rule  # the live rule by id (reload swaps them)
        self.inflight: OrderedDict[tuple[str, str], Execution] = OrderedDict()
        # The tasks that succeeded executions submitted, until they end.
        self.tasks: StartedTasks[Execution] = StartedTasks(
            router, "automation:tasks", "rule", self._task_ended, limit=MAX_INFLIGHT
        )
        self._cancelling: set[str] = set()  # tasks overlap replace is cancelling
        self._background: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        self.tasks.start()

    def stop(self) -> None:
        self.tasks.stop()
        for job in list(self._background):
            job.cancel()

    def forget_rule(self, rs: RuleState) -> None:
        """A reload removed the rule: what waits or is handed over for it fails."""
        waiting = [exe for exe, _ in rs.gate.drain()]
        waiting += [self.inflight.pop(k) for k in list(self.inflight) if k[0] == rs.rule.id]
        for exe in waiting:
            exe.set_state(S.FAILED, "the rule was removed by a reload")

    # ---- the overlap gate ------------------------------------------------------------
    def hand_over(self, rs: RuleState, exe: Execution, event: Event) -> None:
        """A queued execution through the rule's overlap gate: start, skip or wait."""
        running = ", ".join(rs.gate.labels())
        admission, dropped = rs.gate.admit(rs.rule.overlap_policy, (exe, event))
        if admission is Admission.START:
            self._start(rs, exe, event)
            return
        if admission is Admission.SKIP:
            rs.skipped += 1
            why = f'the previous run is still running ({running}) and overlap is "skip"'
            exe.set_state(S.SKIPPED, why)
            self.finished(rs, exe)
            return
        if dropped is not None:
            rs.skipped += 1
            dropped[0].set_state(S.SKIPPED, f"superseded by {exe.id} (event {event.id})")
            self.finished(rs, dropped[0])
        rs.last_result = f"{exe.id} queued behind {running}"
        if admission is Admission.REPLACE:
            for task_id in list(rs.gate.running.values()):
                if task_id:  # a run still starting its task is cancelled in _succeeded
                    self._replace(rs, task_id, exe)

    def _start(self, rs: RuleState, exe: Execution, event: Event) -> None:
        """Start a run: deliver the event to the rule's executor (retries on failure)."""
        rs.gate.begin(exe.id)
        self.inflight[(rs.rule.id, exe.event["id"])] = exe
        while len(self.inflight) > MAX_INFLIGHT:
            self.inflight.popitem(last=False)
        assert rs.executor is not None
        if not self.router.deliver(rs.executor, event):
            self.inflight.pop((rs.rule.id, exe.event["id"]), None)
            exe.set_state(S.FAILED, "the rule's executor queue is full; event dropped")
            self.finished(rs, exe)

    def _replace(self, rs: RuleState, task_id: str, newer: Execution) -> None:
        """Cancel a running run's task; the waiting execution starts once it is gone."""
        old = self.tasks.owners.get(task_id)
        if old is None or task_id in self._cancelling:
            return
        self._cancelling.add(task_id)
        rs.replaced += 1
        old.error = f"replaced by {newer.id}: its task was cancelled"
        job = asyncio.create_task(self._cancel(rs, old, task_id), name=f"cancel:{task_id}")
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def _cancel(self, rs: RuleState, old: Execution, task_id: str) -> None:
        if not await self.runner.cancel_task(task_id):
            # It ended on its own first: nothing was replaced after all.
            rs.replaced -= 1
            old.error = None

    def _run_ended(self, rs: RuleState, exe: Execution) -> None:
        if exe.id not in rs.gate.running:
            return  # not a gated run: a replayed dead letter
        waiting = rs.gate.end(exe.id)
        if waiting is not None:
            self._start(rs, *waiting)

    # ---- execution ---------------------------------------------------------------------
    def executor(self, rule_id: str) -> Any:
        async def run(event: Event) -> None:
            await self._execute(rule_id, event)

        return run

    async def _execute(self, rule_id: str, event: Event) -> None:
        rs = self.rule(rule_id)
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
                self._succeeded(rs, exe, out)
            else:
                exe.set_state(S.FAILED, str(out.error))
            self.finished(rs, exe)
        # Raises a failure: the router retries it, or dead-letters it after the last
        # attempt; a hopeless one (a missing field) is not dead-lettered.
        out.hand_back()

    def _succeeded(self, rs: RuleState, exe: Execution, out: Outcome) -> None:
        exe.result = out.result
        exe.task_id = out.task_id
        if exe.task_id is not None:
            exe.task_state = out.result.get("state")
            ended = self.tasks.track(exe.task_id, exe)
            if ended is not None:
                exe.task_state = ended
            elif exe.id in rs.gate.running:
                rs.gate.begin(exe.id, exe.task_id)  # the run lasts until the task ends
        exe.set_state(S.SUCCEEDED)
        task_id = rs.gate.running.get(exe.id)
        if task_id and rs.gate.waiting and rs.rule.overlap_policy == "replace":
            self._replace(rs, task_id, rs.gate.waiting[-1][0])  # asked while it started

    def finished(self, rs: RuleState, exe: Execution) -> None:
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
        self.log.persist(exe, rs.snapshot())
        if exe.task_id is None or exe.task_id not in self.tasks.owners:
            self._run_ended(rs, exe)

    def _task_ended(self, exe: Execution, task_id: str, state: str) -> None:
        exe.task_state = state
        self._cancelling.discard(task_id)
        rs = self.rule(exe.rule_id)
        if rs is not None:
            self.log.persist(exe, rs.snapshot())  # the newest line of an id wins at load
            self._run_ended(rs, exe)
