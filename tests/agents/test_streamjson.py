"""The stream-json parser fed like the daemon feeds it: arbitrary chunks, odd bytes.

The streams are the fake agent's (tests/agents/fake_agent.py): the same bytes the
script writes when the daemon runs it (test_streamjson_process.py runs it for real).
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from aiwgd.agents.streamjson import MAX_LINE, AgentRun, StreamJsonParser
from tests.agents import fake_agent as fa

MODES = ["normal", "error", "killed", "huge", "garbage", "wrongcost"]
SEEDS = [1, 2, 3]


def chunks(data: bytes, rng: random.Random) -> list[bytes]:
    """`data` cut at random points: single bytes, small pieces and 64 KiB reads mixed."""
    out, i = [], 0
    while i < len(data):
        size = rng.choice([1, 2, rng.randint(3, 300), rng.randint(300, 70_000)])
        out.append(data[i : i + size])
        i += size
    return out


def parse(data: bytes, rng: random.Random | None = None) -> AgentRun:
    p = StreamJsonParser()
    for piece in chunks(data, rng) if rng is not None else [data]:
        p.feed(piece)
    return p.close()


def expected(mode: str) -> dict[str, Any]:
    """Every field the fake agent's `mode` stream must give."""
    done = {
        "session_id": fa.SESSION,
        "result": fa.ANSWER,
        "is_error": False,
        "turns": 3,
        "duration_ms": 5321,
        "cost_usd": fa.TOTAL_COST,
        "usage": fa.TOTAL_USAGE,
        "problems": 0,
        "subtype": "success",
        "model": fa.MODEL,
        "cost_estimated": False,
        "lines": 6,
        "non_json_lines": 0,
        "huge_lines": 0,
    }
    if mode == "normal":
        return done
    if mode == "error":
        return {
            **done,
            "is_error": True,
            "subtype": "error_during_execution",
            "result": "API Error: 529 overloaded",
        }
    if mode == "killed":
        return {
            **done,
            "result": None,
            "is_error": None,
            "turns": None,
            "duration_ms": None,
            "subtype": None,
            "cost_usd": round(fa.ESTIMATE, 9),
            "cost_estimated": True,
            "usage": fa.ESTIMATE_TOKENS,
            "lines": 5,
        }
    if mode == "huge":
        return {**done, "lines": 7, "huge_lines": 1}
    if mode == "garbage":
        # 3 lines that are not JSON (a print, binary junk, an array); 1 cut JSON event.
        return {
            **done,
            "result": fa.ANSWER.replace("ï", "\ufffd"),
            "lines": 12,
            "non_json_lines": 3,
            "problems": 1,
        }
    if mode == "wrongcost":
        # The string cost is not used: the estimate from the messages stands.
        return {**done, "cost_usd": round(fa.ESTIMATE, 9), "cost_estimated": True, "problems": 1}
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", MODES)
def test_every_field_whatever_the_chunks(mode: str) -> None:
    data = b"".join(fa.stream(mode))
    want = expected(mode)
    assert parse(data).to_dict() == want
    for seed in SEEDS:
        assert parse(data, random.Random(seed)).to_dict() == want, f"seed {seed}"


def test_one_byte_at_a_time() -> None:
    p = StreamJsonParser()
    for byte in b"".join(fa.stream("garbage")):
        p.feed(bytes([byte]))
    assert p.close().to_dict() == expected("garbage")


def test_on_change_sees_the_session_then_the_cost_grow_then_the_total() -> None:
    seen: list[dict[str, Any]] = []
    p = StreamJsonParser(on_change=lambda run: seen.append(run.to_dict()))
    for line in fa.stream("normal"):  # a read per line: each change seen on its own
        p.feed(line)
    p.close()
    assert [(s["session_id"], s["cost_usd"], s["cost_estimated"]) for s in seen] == [
        (fa.SESSION, None, False),
        (fa.SESSION, round(0.00513, 9), True),  # message 1 (its second line: same usage)
        (fa.SESSION, round(fa.ESTIMATE, 9), True),  # message 2
        (fa.SESSION, fa.TOTAL_COST, False),  # the result's total replaces the estimate
    ]


def test_on_change_is_told_once_per_chunk_with_the_latest_figures() -> None:
    seen: list[dict[str, Any]] = []
    p = StreamJsonParser(on_change=lambda run: seen.append(run.to_dict()))
    p.feed(b"".join(fa.stream("killed")))  # the whole run in one read
    assert [(s["session_id"], s["cost_usd"]) for s in seen] == [(fa.SESSION, round(fa.ESTIMATE, 9))]
    p.close()  # the half line at the end changes nothing: no call
    assert len(seen) == 1


def test_a_failing_callback_does_not_stop_the_parser(caplog: pytest.LogCaptureFixture) -> None:
    def boom(run: AgentRun) -> None:
        raise RuntimeError("budget check broke")

    p = StreamJsonParser(on_change=boom)
    p.feed(b"".join(fa.stream("normal")))
    assert p.close().to_dict() == expected("normal")
    assert "on_change callback failed" in caplog.text


@pytest.mark.parametrize("kind", ["assistant", "user"])
def test_a_line_without_end_is_never_buffered_past_the_cap(kind: str) -> None:
    import tracemalloc

    piece = b'{"type":"%s","message":"' % kind.encode() + b"y" * (64 * 1024)
    p = StreamJsonParser()
    tracemalloc.start()
    try:
        for _ in range(16 * 1024 * 1024 // len(piece)):  # 16 MiB of one line
            p.feed(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_LINE + 256 * 1024, peak
    p.feed(b"\n" + b"".join(fa.stream("normal")))
    run = p.close()
    assert run.huge_lines == 1 and run.result == fa.ANSWER and run.cost_usd == fa.TOTAL_COST
    assert run.lines == 7


def sized(obj: dict[str, Any], key: str, n: int) -> bytes:
    """`obj` as one compact line of exactly `n` bytes (before its newline), padding `key`."""
    bare = len(json.dumps({**obj, key: ""}, separators=(",", ":")))
    out = json.dumps({**obj, key: "r" * (n - bare)}, separators=(",", ":")).encode()
    assert len(out) == n
    return out + b"\n"


@pytest.mark.parametrize("extra", [0, 1])
def test_a_line_of_exactly_the_cap_is_parsed_one_byte_more_is_not(extra: int) -> None:
    huge = sized(fa.result(), "result", MAX_LINE + extra)
    tool = sized(fa.tool_result(""), "padding", MAX_LINE + extra)
    for rng in (None, random.Random(extra), random.Random(extra + 10)):
        run = parse(tool + huge, rng)
        assert run.huge_lines == 2 * extra and run.lines == 2
        assert (run.result is None) == bool(extra)


def test_crlf_line_ends_read_the_same() -> None:
    data = b"".join(fa.stream("normal")).replace(b"\n", b"\r\n")
    assert parse(data, random.Random(4)).to_dict() == expected("normal")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("total_cost_usd", "0.05"),
        ("total_cost_usd", True),
        ("total_cost_usd", -1),
        ("total_cost_usd", None),
        ("total_cost_usd", {"usd": 1}),
        ("num_turns", "3"),
        ("is_error", "false"),
        ("result", ["a", "b"]),
        ("usage", {"input_tokens": "30", "output_tokens": 400}),
        ("usage", [1, 2]),
    ],
)
def test_a_field_of_the_wrong_type_is_a_problem_not_a_crash(field: str, value: Any) -> None:
    base = b"".join(fa.stream("normal")[:-1])
    run = parse(base + fa.line(fa.result(**{field: value})))
    assert run.problems == 1
    # What was right in the line is still taken; the wrong field is not.
    assert run.session_id == fa.SESSION and run.subtype == "success"
    assert run.result == (None if field == "result" else fa.ANSWER)
    if field == "total_cost_usd":
        assert run.cost_usd == round(fa.ESTIMATE, 9) and run.cost_estimated
    else:
        assert run.cost_usd == fa.TOTAL_COST and not run.cost_estimated


def test_nan_cost_and_deep_nesting_are_problems() -> None:
    deep = b'{"type":"result","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    run = parse(b'{"type":"result","total_cost_usd":NaN}\n' + deep)
    assert run.problems == 2 and run.cost_usd is None


def test_the_result_alone_gives_cost_and_tokens() -> None:
    run = parse(fa.line(fa.result(usage={"input_tokens": 7, "output_tokens": 9})))
    assert run.cost_usd == fa.TOTAL_COST and not run.cost_estimated
    assert run.usage == {
        "input_tokens": 7,
        "output_tokens": 9,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert run.session_id == fa.SESSION and run.problems == 0


def test_nothing_known_is_none_and_zero() -> None:
    run = parse(b"hello\nworld")
    assert run.to_dict() == {**AgentRun().to_dict(), "lines": 2, "non_json_lines": 2}
    assert run.cost_usd is None and run.usage == {k: 0 for k in fa.TOTAL_USAGE}


def test_a_message_seen_again_with_more_output_replaces_its_count() -> None:
    grown = {**fa.MSG2, "output_tokens": 1200}
    data = fa.line(fa.init()) + fa.line(fa.assistant("m", [], fa.MSG2))
    data += fa.line(fa.assistant("m", [{"type": "text", "text": "more"}], grown))
    run = parse(data)
    assert run.usage["output_tokens"] == 1200
    assert run.cost_usd == round((5 * 3 + 1200 * 15 + 3000 * 0.30) / 1e6, 9)


def test_assistant_content_that_is_not_utf8_still_counts_its_usage() -> None:
    line = fa.line(fa.assistant("m", [{"type": "text", "text": "caf\u00e9"}], fa.MSG1))
    run = parse(line.replace("é".encode(), b"\xe9"))
    assert run.problems == 0 and run.usage["cache_read_input_tokens"] == 2000


def test_an_unknown_model_is_priced_high_not_free() -> None:
    msg = fa.assistant("m", [], {"input_tokens": 1_000_000, "output_tokens": 0})
    msg["message"]["model"] = "claude-future-9"
    run = parse(fa.line(msg))
    assert run.cost_usd == 15.0 and run.model == "claude-future-9"


def test_close_twice_and_feed_after_close() -> None:
    p = StreamJsonParser()
    p.feed(b"".join(fa.stream("normal")))
    first = p.close().to_dict()
    p.feed(fa.line(fa.result(total_cost_usd=9.0)))
    assert p.close().to_dict() == first


def test_the_cut_last_line_counts_only_when_whole() -> None:
    whole = fa.line(fa.result()).rstrip(b"\n")
    assert parse(whole).result == fa.ANSWER  # no newline at EOF, but complete
    cut = parse(whole[:-1])
    assert (cut.result, cut.problems, cut.lines) == (None, 0, 0)


def test_claude_code_lines_and_other_spellings_read_the_same() -> None:
    """Claude Code's exact lines take a shortcut; spaced JSON, sorted keys and other
    usage shapes go the general way: the figures must not differ."""
    nested = {
        "input_tokens": 3,
        "cache_creation_input_tokens": 40,
        "cache_read_input_tokens": 500,
        "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 6000,
    }
    reordered = {"output_tokens": 7, "input_tokens": 8}
    huge_count = {**fa.MSG1, "input_tokens": 10**16}
    events = [
        fa.init(),
        fa.assistant("a", [{"type": "text", "text": "one"}], nested),
        fa.assistant("b", [{"type": "text", "text": "two"}], reordered),
        fa.assistant("c", [{"type": "text", "text": "three"}], huge_count),
    ]
    runs = [
        parse(b"".join(fa.line(e) for e in events)),
        parse(b"".join(fa.line(e, spaced=True) for e in events)),
        parse(b"".join(json.dumps(e, sort_keys=True).encode() + b"\n" for e in events)),
    ]
    want = {
        "input_tokens": 3 + 8 + 10**16,
        "output_tokens": 6000 + 7 + 50,
        "cache_creation_input_tokens": 40 + 1000,
        "cache_read_input_tokens": 500 + 2000,
    }
    for run in runs:
        assert run.usage == want and run.problems == 0 and run.model == fa.MODEL
    assert runs[0].to_dict() == runs[1].to_dict() == runs[2].to_dict()
