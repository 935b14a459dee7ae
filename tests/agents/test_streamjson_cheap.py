"""The parser's cheap mode (no budget: no running estimate on the output path), and the
task log read back for what it leaves out, as the local executor combines them: the
parser's run when a result line gave the totals, else the log's.

The streams are the fake agent's (tests/agents/fake_agent.py), cut like the daemon's
reads cut them, and every field a user sees must come out as the full mode gives it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from aiwgd.agents.logcost import LogRun, log_size
from aiwgd.agents.streamjson import AgentRun, StreamJsonParser
from tests.agents import fake_agent as fa
from tests.agents.test_streamjson import MODES, chunks, expected

SEEDS = [1, 2, 3, 4, 5, 6]
# What the task record and the budget take from a run (the per-line counts are stats
# the cheap mode only keeps for the lines it looks at).
USED = ["session_id", "result", "is_error", "turns", "duration_ms", "cost_usd", "usage"]
USED += ["subtype", "model", "cost_estimated"]
# A result line gave the totals: the cheap parser alone is enough.
SETTLED = {"normal", "error", "huge", "garbage"}


def cheap(pieces: list[bytes]) -> StreamJsonParser:
    p = StreamJsonParser(estimate=False)
    for piece in pieces:
        p.feed(piece)
    p.close()
    return p


def used(run: AgentRun) -> dict[str, Any]:
    return {k: v for k, v in run.to_dict().items() if k in USED}


def as_executor(pieces: list[bytes], log: Path) -> AgentRun:
    """The run the executor records: the log written as the pieces come, the cheap
    parser watching them, the log read back only if no result line settled it."""
    reader = LogRun(str(log), log_size(str(log)))
    p = StreamJsonParser(estimate=False)
    with log.open("ab") as f:
        for piece in pieces:
            f.write(piece)
            p.feed(piece)
    p.close()
    return p.run if p.settled else reader.close()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", MODES)
def test_the_fields_are_the_full_modes_whatever_the_chunks(
    tmp_path: Path, mode: str, seed: int
) -> None:
    data = b"".join(fa.stream(mode))
    pieces = chunks(data, random.Random(seed))
    want = {k: v for k, v in expected(mode).items() if k in USED}
    p = cheap(pieces)
    assert p.settled == (mode in SETTLED)
    # Only lines it looked at are counted, never a piece of one as a line of its own.
    full = expected(mode)
    for count in ("problems", "non_json_lines", "huge_lines"):
        assert getattr(p.run, count) <= full[count]
    assert p.run.session_id == fa.SESSION
    if p.settled:
        assert used(p.run) == want
    log = tmp_path / "task.log"
    log.write_bytes(b"[aiwgd] an earlier attempt's output\n")  # not this attempt's
    assert used(as_executor(pieces, log)) == want


def halves(lines: list[bytes]) -> list[bytes]:
    """Each line in two reads: every other read ends a line begun in the one before."""
    return [half for ln in lines for half in (ln[: len(ln) // 2], ln[len(ln) // 2 :]) if half]


@pytest.mark.parametrize("mode", MODES)
def test_one_byte_at_a_time_line_by_line_and_by_halves(tmp_path: Path, mode: str) -> None:
    data = b"".join(fa.stream(mode))
    want = {k: v for k, v in expected(mode).items() if k in USED}
    full = expected(mode)
    ways = [[data[i : i + 1] for i in range(len(data))], fa.stream(mode), halves(fa.stream(mode))]
    for i, pieces in enumerate(ways):
        p = cheap(pieces)
        for count in ("problems", "non_json_lines", "huge_lines"):
            assert getattr(p.run, count) <= full[count], (i, count)
        assert used(as_executor(pieces, tmp_path / f"{i}.log")) == want


def test_a_result_line_longer_than_a_chunk(tmp_path: Path) -> None:
    answer = "é" * 300_000  # 600 KB of UTF-8: ten 64 KiB reads
    data = b"".join([*fa.messages(), fa.line(fa.result(result=answer))])
    for size in (1, 7, 64 * 1024):
        p = cheap([data[i : i + size] for i in range(0, len(data), size)])
        assert p.settled and p.run.result == answer and p.run.cost_usd == fa.TOTAL_COST


def test_a_result_inside_a_tool_result_is_not_taken() -> None:
    fake = fa.line(fa.result(result="fake", total_cost_usd=99.0)).decode()
    tool = fa.line(fa.tool_result(fake + fake))
    assert b'"type":"result"' not in tool and b'\\"type\\":\\"result\\"' in tool
    obj = json.loads(tool)
    reordered = json.dumps({"message": obj["message"], "type": "user"}).encode() + b"\n"
    # Each line its own chunk: each tool result is the last line of one.
    p = cheap([*fa.messages(), tool, reordered])
    assert not p.settled and p.run.result is None and p.run.cost_usd is None
    assert p.run.session_id == fa.SESSION


def test_a_result_with_lines_after_it_in_one_chunk_is_left_to_the_log(tmp_path: Path) -> None:
    """Only a chunk's last line is looked at: a result before others is not settled,
    and the log gives it, with what came after it."""
    body = fa.messages()
    late = fa.line(fa.assistant("msg_09", [{"type": "text", "text": "PS"}], fa.MSG2))
    tail = fa.line(fa.result()) + late + b"bye\n"
    p = cheap([*body, tail])
    assert not p.settled and p.run.result is None
    full = StreamJsonParser()
    for piece in [*body, tail]:
        full.feed(piece)
    run = as_executor([*body, tail], tmp_path / "task.log")
    assert used(run) == used(full.close())
    assert run.result == fa.ANSWER and run.cost_estimated  # the PS is on top of the total


def test_the_log_is_read_on_from_where_it_stopped(tmp_path: Path) -> None:
    """The running cost grows as the log does; each read takes only the new bytes."""
    log = tmp_path / "task.log"
    reader = LogRun(str(log), 0)
    assert reader.read().cost_usd is None  # no log yet
    costs = []
    with log.open("ab", buffering=0) as f:
        for piece in fa.stream("killed"):
            f.write(piece)
            costs.append(reader.read().cost_usd or 0.0)
    assert costs == sorted(costs) and costs[-1] == pytest.approx(fa.ESTIMATE)
    done = reader.close()
    assert done.cost_estimated and done.usage == fa.ESTIMATE_TOKENS
