"""The local executor: each attempt is a child process of the daemon.

`start()` spawns the task's program in its own session (so it leads its own process
group), never through a shell, with output to the task's log; the child is in the
process registry while it lives. `LocalAttempt.wait()` waits for whichever comes
first (exit, a stop request, the timeout), takes the child down the stop ladder when
it must, and returns only once every process it started is gone (those that left its
group too: they carry the task's mark, `AIWG_TASK_ID` and `AIWG_ROOT` in their
environment). The PID, group and create time are this executor's state: the task
records them as its `runner`, and `recover()` uses them, and the mark, to stop what
an earlier daemon run left behind; `sweep()` stops whatever else carries the mark.

With `agent.output: stream-json`, a prompt task's output also goes, chunk by chunk as
it is read, to a StreamJsonParser (aiwgd.agents.streamjson): the log still gets every
byte unchanged, the parser only observes. Its changes (session id, running cost) go
to the AgentBudget, which may stop the attempt (`stop_for_budget`); the run itself is
`agent_run()` once the attempt ended.

The parser's full mode (the running estimate from every assistant message's usage) is
used only when a budget needs it on the output path. Otherwise it runs in its cheap
mode, and the running cost is read back from the task log in a thread (a LogRun) only
when something needs it: a budget (one added by a reload: soon after the start, then
every RECORD_EVERY_S), someone looking at the running task (task.get asks, at most
every RECORD_EVERY_S), and the end of an attempt without a result line that gave the
totals (a killed agent). With no budget and nobody looking, no byte is parsed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiwgd.agents.budget import RECORD_EVERY_S, AgentBudget
from aiwgd.agents.logcost import LogRun, log_size
from aiwgd.agents.streamjson import AgentRun, StreamJsonParser
from aiwgd.config import Config
from aiwgd.lifecycle import Lifecycle
from aiwgd.procs import marks
from aiwgd.procs.child import Child
from aiwgd.procs.output import OutputSink
from aiwgd.procs.registry import ChildRegistry
from aiwgd.procs.tree import kill_leftovers
from aiwgd.tasks.executors.base import Ending, EndReason, SpawnError
from aiwgd.tasks.launch import spawn_plan, task_argv, task_limits
from aiwgd.tasks.model import Task
from aiwgd.tasks.policy import child_env

log = logging.getLogger("aiwgd.supervisor")

FIRST_READ_S = 1.0  # the first running cost from the log: soon, but not per chunk

TASK_MARK = "AIWG_TASK_ID"
ROOT_MARK = "AIWG_ROOT"
# An `aiwg worker` on this host with the project as its root marks its children so too,
# and these as well (aiwgd.remote.keys): they are the worker's, never this daemon's.
REMOTE_MARKS = ("AIWG_EXECUTION",)


class LocalExecutor:
    name = "local"

    def __init__(
        self,
        config: Config,
        root: Path,
        lifecycle: Lifecycle,
        children: ChildRegistry,
        agents: AgentBudget | None = None,
    ) -> None:
        self.config = config
        self.root = root
        self.lifecycle = lifecycle
        self.children = children
        self.agents = agents  # told what a stream-json agent says while it runs

    def apply_config(self, config: Config) -> None:
        self.config = config

    async def start(self, task: Task, log_path: str, on_output: Callable[[], None]) -> LocalAttempt:
        cfg = self.config
        argv = task_argv(cfg, task)
        env = child_env(cfg, task.env)
        header = f"[aiwgd] attempt {task.attempt} of task {task.id}\n" if task.attempt > 1 else None
        parser: StreamJsonParser | None = None
        sink: OutputSink | None = None
        reader: LogRun | None = None
        if cfg.agent.output == "stream-json" and task.prompt is not None:
            budget = cfg.agent.budget
            estimate = budget.per_task_usd is not None or budget.per_day_usd is not None
            parser = StreamJsonParser(estimate=estimate)
            if not estimate:
                reader = LogRun(log_path, log_size(log_path))
            sink = AgentSink(
                log_path, cfg.tasks.log_max_bytes, cfg.tasks.output_tail_bytes, on_output, parser
            )
        try:
            # Checked again now, and resolved: the program on the daemon's PATH, the cwd
            # as it is now (it may have become a symlink out of the root since submit).
            argv, cwd = spawn_plan(cfg, self.root, task)
            child = await Child.spawn(
                argv,
                cwd=cwd,
                env=env,
                log_path=log_path,
                log_cap=cfg.tasks.log_max_bytes,
                tail_bytes=cfg.tasks.output_tail_bytes,
                header=header,
                on_data=on_output,
                mark=self.mark(task.id),
                sink=sink,
            )
        except (OSError, ValueError) as exc:
            if sink is not None:
                sink.close()  # idempotent; a refusal by spawn_plan never reached spawn
            raise SpawnError(f"cannot start {argv[0]!r}: {exc}") from exc
        attempt = LocalAttempt(child, self, parser, reader)
        if parser is not None and self.agents is not None:
            # Before any await: the child's output is read on this loop, so no chunk
            # reaches the parser before its watcher is in place.
            attempt.watch(self.agents.watch(task, attempt))
        # Over a limit (the monitor), the attempt ends like a stop: the task fails.
        limits = task_limits(cfg, task)
        on_over = attempt.over_limit if limits is not None else None
        self.children.add(child, f"task:{task.id}", limits, on_over)
        return attempt

    def mark(self, task_id: str) -> dict[str, str]:
        """What every process of the task carries in its environment (and inherits):
        the key a sweep finds escaped descendants by, after a crash too."""
        return {TASK_MARK: task_id, ROOT_MARK: str(self.root)}

    async def recover(self, task: Task) -> list[int]:
        hit: list[int] = []
        runner = task.runner or {}
        pgid = runner.get("pgid") or runner.get("pid")
        if pgid:
            hit = await asyncio.to_thread(kill_leftovers, pgid, runner.get("create_time"))
        # No runner recorded (the daemon died right after the spawn), or a process
        # that left the group: the mark in the environment still names the task.
        stopped = await self._stop_marked(task.id)
        return hit + [p for p in stopped.get(task.id, []) if p not in hit]

    async def sweep(self) -> dict[str, list[int]]:
        return await self._stop_marked(None)

    async def _stop_marked(self, task_id: str | None) -> dict[str, list[int]]:
        """Down the stop ladder with every process (of `task_id`, or of any task) that
        carries this project's mark: at start-up none of them is ours yet."""

        def scan() -> list[marks.MarkedProcess]:
            where = {ROOT_MARK: str(self.root)}
            return marks.find_marked(TASK_MARK, task_id, where=where, without=REMOTE_MARKS)

        found = await asyncio.to_thread(scan)
        if not found:
            return {}
        report = await asyncio.to_thread(marks.stop_marked, found, self.grace(), rescan=scan)
        if report.survivors:
            log.error("processes survive SIGKILL", extra={"processes": report.describe()})
        out: dict[str, list[int]] = {}
        for p in report.stopped:
            out.setdefault(p.value, []).append(p.pid)
        return out

    def grace(self) -> float:
        # Read at each stop, so a reload applies to the next one.
        return self.config.daemon.stop_grace_seconds


class LocalAttempt:
    """A child process from spawn until it and everything it started are gone."""

    def __init__(
        self,
        child: Child,
        executor: LocalExecutor,
        parser: StreamJsonParser | None = None,
        reader: LogRun | None = None,
    ) -> None:
        self.child = child
        self._executor = executor
        self._parser = parser
        self._reader = reader  # the parser is in its cheap mode: figures from the log
        self._log_run: AgentRun | None = None  # the latest read of the log
        self._tell: Callable[[AgentRun], None] | None = None
        self._reads: asyncio.Task[None] | None = None
        self._asked = asyncio.Event()  # someone looks at the running cost (task.get)
        self.reason: EndReason | None = None
        self.detail: str | None = None  # which limit, when the reason is LIMIT
        self._wake: asyncio.Future[None] | None = None

    def placement(self) -> dict[str, Any]:
        c = self.child
        return {"pid": c.pid, "pgid": c.pgid, "create_time": c.create_time}

    def output_tail(self) -> str:
        # What escaped the task's group and what stopped it belongs in its record too.
        return self.child.sink.tail() + self.child.escape_note()

    def stop(self, reason: EndReason) -> None:
        self.reason = self.reason or reason
        if self._wake is not None:
            _settle(self._wake)

    def over_limit(self, reason: str, detail: str) -> None:
        """The monitor's on_over: down the stop ladder; the task fails with `detail`."""
        if self.reason is None:
            self.detail = detail
        self.stop(EndReason.LIMIT)

    def stop_for_budget(self, detail: str) -> None:
        """Over agent.budget: down the stop ladder; the task fails with `detail`."""
        if self.reason is None:
            self.detail = detail
        self.stop(EndReason.BUDGET)

    def agent_run(self) -> AgentRun | None:
        """What a stream-json agent said (complete once the attempt ended), or None."""
        parser = self._parser
        if parser is None:
            return None
        if parser.settled or self._log_run is None:
            return parser.run
        return self._log_run

    def watch(self, tell: Callable[[AgentRun], None]) -> None:
        """Tell `tell` the run as it changes: from the parser, and from the log."""
        assert self._parser is not None
        self._tell = tell
        self._parser.on_change = lambda _run: self._changed()
        if self._reader is not None:
            self._reads = asyncio.get_running_loop().create_task(self._read_log(self._reader))

    def _changed(self) -> None:
        run = self.agent_run()
        if self._tell is not None and run is not None:
            self._tell(run)

    def ask_fresh(self) -> None:
        """Someone shows the running task: bring its cost up to date (soon, throttled)."""
        self._asked.set()

    def _budgeted(self) -> bool:
        budget = self._executor.config.agent.budget
        return budget.per_task_usd is not None or budget.per_day_usd is not None

    async def _read_log(self, reader: LogRun) -> None:
        """The running cost from the log, while the agent has not said its total: every
        RECORD_EVERY_S under a budget; else only when asked, at most that often."""
        delay = FIRST_READ_S
        while True:
            await asyncio.sleep(delay)
            delay = RECORD_EVERY_S
            if not self._budgeted():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._asked.wait(), RECORD_EVERY_S)
                if not self._asked.is_set():
                    continue  # nobody asked, and no budget (a reload may add one)
            self._asked.clear()
            if self._parser is not None and self._parser.settled:
                continue
            try:
                self._log_run = await asyncio.to_thread(reader.read)
            except OSError as exc:
                log.warning("agent log not read", extra={"path": reader.path, "error": str(exc)})
                continue
            self._changed()

    async def _last_read(self) -> None:
        """The attempt ended: what the log says, unless a result line gave the totals."""
        if self._reads is not None:
            self._reads.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reads
            self._reads = None
        reader, parser = self._reader, self._parser
        if reader is None or parser is None or parser.settled:
            return
        try:
            self._log_run = await asyncio.to_thread(reader.close)
        except OSError as exc:
            log.warning("agent log not read", extra={"path": reader.path, "error": str(exc)})

    async def wait(self, timeout: float) -> Ending:
        child, ex = self.child, self._executor
        fast = ex.lifecycle.fast_stop
        # One future woken by whichever comes first: exit, a stop request, the timeout.
        loop = asyncio.get_running_loop()
        wake = self._wake = loop.create_future()
        child.exited().add_done_callback(lambda _f: _settle(wake))
        if self.reason is not None:
            _settle(wake)  # stopped while it was being spawned
        timer = loop.call_later(timeout, _settle, wake)
        try:
            await wake
        finally:
            timer.cancel()
        try:
            if not child.exited().done() or self.reason is not None:
                self.reason = self.reason or EndReason.TIMEOUT
                await child.terminate(ex.grace(), fast)
            result = await child.finish(ex.grace(), fast)
        finally:
            ex.children.discard(child)
        await self._last_read()
        return Ending(result, self.reason, self.detail)

    async def abort(self) -> None:
        if self._reads is not None:
            self._reads.cancel()
        if self._executor.agents is not None:
            self._executor.agents.forget(self)
        try:
            await self.child.kill()
            await self.child.finish(0)
        finally:
            self._executor.children.discard(self.child)


class AgentSink(OutputSink):
    """The task log as in text mode, with a parser watching the same bytes: it sees each
    chunk after the log has it, and nothing it does can hold output back."""

    def __init__(
        self,
        path: str,
        cap: int,
        tail_bytes: int,
        on_data: Callable[[], None],
        parser: StreamJsonParser,
    ) -> None:
        super().__init__(path, cap, tail_bytes, on_data)
        self.parser = parser
        self.parser_ok = True

    def feed(self, data: bytes) -> None:
        super().feed(data)
        if self.parser_ok:
            try:
                self.parser.feed(data)
            except Exception:  # a parser bug must never cost the task its output
                self.parser_ok = False
                log.exception("stream-json parser failed; the task's output is still logged")

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):
            self.parser.close()


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
