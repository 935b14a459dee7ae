"""The parser on a real agent process, through the daemon's own spawn path.

The fake agent (tests/agents/fake_agent.py) runs as a child of Child.spawn, writing
its lines in pieces with sleeps between them; the pipe is read by the daemon's reader
(64 KiB non-blocking reads on the event loop) into a sink that feeds both the task
log (OutputSink, as in text mode) and the parser, which is how the supervisor will
wire `agent.output: stream-json`. The log must hold the stream byte for byte: the
parser only observes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from aiwgd.agents.streamjson import AgentRun, StreamJsonParser
from aiwgd.procs.child import Child
from aiwgd.procs.output import OutputSink
from tests.agents import fake_agent as fa
from tests.agents.test_streamjson import expected

AGENT = Path(fa.__file__)


class ParsingSink(OutputSink):
    """The task log, and the parser watching the same bytes."""

    def __init__(self, path: Path, parser: StreamJsonParser) -> None:
        super().__init__(path)
        self.parser = parser

    def feed(self, data: bytes) -> None:
        super().feed(data)
        self.parser.feed(data)

    def close(self) -> None:
        super().close()
        self.parser.close()


def run_agent(tmp_path: Path, mode: str) -> tuple[AgentRun, int | None, list[AgentRun]]:
    changes: list[AgentRun] = []
    parser = StreamJsonParser(on_change=lambda run: changes.append(AgentRun(**run.to_dict())))

    async def go() -> int | None:
        child = await Child.spawn(
            [sys.executable, str(AGENT), "--mode", mode, "--delay", "0.001"],
            cwd=tmp_path,
            env=dict(os.environ),
            sink=ParsingSink(tmp_path / "task.log", parser),
        )
        await asyncio.wait_for(child.finish(grace=2), timeout=30)
        return child.returncode

    returncode = asyncio.run(go())
    return parser.run, returncode, changes


@pytest.mark.parametrize("mode", ["normal", "error", "killed", "huge", "garbage", "wrongcost"])
def test_a_real_agent_stream(tmp_path: Path, mode: str) -> None:
    run, returncode, changes = run_agent(tmp_path, mode)
    assert run.to_dict() == expected(mode)
    assert (tmp_path / "task.log").read_bytes() == b"".join(fa.stream(mode))
    assert returncode == (-signal.SIGKILL if mode == "killed" else 0)
    # A budget watching on_change saw the session first and the last cost last.
    assert changes[0].session_id == fa.SESSION
    assert changes[-1].cost_usd == expected(mode)["cost_usd"]


def test_the_running_cost_of_an_agent_killed_before_its_result(tmp_path: Path) -> None:
    run, _, changes = run_agent(tmp_path, "killed")
    assert run.result is None and run.is_error is None
    assert run.cost_estimated and run.cost_usd == round(fa.ESTIMATE, 9)
    # The cost grew message by message while the agent ran: a budget could act on it.
    costs = [c.cost_usd for c in changes if c.cost_usd is not None]
    assert costs == sorted(costs) and len(costs) == 2
