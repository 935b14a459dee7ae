"""A fake agent printing Claude Code's `--output-format stream-json`, like a real one.

    python fake_agent.py --mode normal [--delay 0.002]

Each line is written in two or three pieces with a short sleep between them, so a
reader sees lines cut anywhere. Modes:
  normal    init, two assistant messages (the first as two lines, one per content
            block, the same usage), tool results, a success result
  error     the same, then an error result (is_error true)
  killed    no result: after the messages, half a line, then SIGKILL to itself
  huge      a 2 MiB tool result line among the others
  garbage   stray prints, bytes that are not UTF-8, a cut JSON line, spaced JSON and
            another key order, then a success result
  wrongcost a result whose total_cost_usd is a string

Importable: `stream(mode)` is the exact bytes, line by line, that the script writes,
and the constants below are what a parser must find in them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

SESSION = "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
MODEL = "claude-sonnet-4-5-20250929"
ANSWER = "All 12 tests pass. Fixed the off-by-one in parse_range — naïve loop replaced."
# Sonnet list prices per million tokens: 3 input, 15 output, 3.75 cache write, 0.30 read.
MSG1 = {
    "input_tokens": 10,
    "cache_creation_input_tokens": 1000,
    "cache_read_input_tokens": 2000,
    "output_tokens": 50,
}
MSG2 = {
    "input_tokens": 5,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 3000,
    "output_tokens": 200,
}
ESTIMATE = (10 * 3 + 50 * 15 + 1000 * 3.75 + 2000 * 0.30 + 5 * 3 + 200 * 15 + 3000 * 0.30) / 1e6
ESTIMATE_TOKENS = {
    "input_tokens": 15,
    "output_tokens": 250,
    "cache_creation_input_tokens": 1000,
    "cache_read_input_tokens": 5000,
}
TOTAL_COST = 0.0421
TOTAL_USAGE = {
    "input_tokens": 30,
    "output_tokens": 400,
    "cache_creation_input_tokens": 1500,
    "cache_read_input_tokens": 5000,
}
HUGE = 2 * 1024 * 1024


def line(obj: dict[str, Any], spaced: bool = False) -> bytes:
    if spaced:
        return json.dumps(obj).encode() + b"\n"
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def init() -> dict[str, Any]:
    return {
        "type": "system",
        "subtype": "init",
        "cwd": "/tmp/proj",
        "session_id": SESSION,
        "tools": ["Bash", "Read", "Edit"],
        "mcp_servers": [],
        "model": MODEL,
        "permissionMode": "default",
        "apiKeySource": "none",
    }


def assistant(msg_id: str, content: list[dict[str, Any]], usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "assistant",
        "message": {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "service_tier": "standard"},
        },
        "parent_tool_use_id": None,
        "session_id": SESSION,
    }


def tool_result(text: str) -> dict[str, Any]:
    return {
        "type": "user",
        "message": {
            "role": "user",
            "content": [{"tool_use_id": "toolu_01", "type": "tool_result", "content": text}],
        },
        "parent_tool_use_id": None,
        "session_id": SESSION,
    }


def result(**over: Any) -> dict[str, Any]:
    out = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 5321,
        "duration_api_ms": 4800,
        "num_turns": 3,
        "result": ANSWER,
        "session_id": SESSION,
        "total_cost_usd": TOTAL_COST,
        "usage": {**TOTAL_USAGE, "server_tool_use": {"web_search_requests": 0}},
        "permission_denials": [],
    }
    out.update(over)
    return out


def messages() -> list[bytes]:
    """init, message 1 as two lines (text, then a tool call), a tool result, message 2."""
    # A tool call whose input mentions "usage" (inside a string, after the real one).
    call = {
        "type": "tool_use",
        "id": "toolu_01",
        "name": "Bash",
        "input": {"command": 'grep -n \'"usage":{"input_tokens":999999}\' log.txt'},
    }
    first = assistant("msg_01", [{"type": "text", "text": "Let me run the tests first."}], MSG1)
    second = assistant("msg_01", [call], MSG1)
    # A key that ends in "usage" after the real usage (its quote is escaped): not it.
    second['x"usage'] = {"input_tokens": 777777, "output_tokens": 1}
    listing = "\n".join(f"tests/test_{i}.py::test_case PASSED" for i in range(200))
    return [
        line(init()),
        line(first),
        line(second),
        line(tool_result(listing)),
        line(assistant("msg_02", [{"type": "text", "text": ANSWER}], MSG2)),
    ]


def stream(mode: str) -> list[bytes]:
    if mode == "normal":
        return [*messages(), line(result())]
    if mode == "error":
        return [
            *messages(),
            line(
                result(
                    subtype="error_during_execution",
                    is_error=True,
                    result="API Error: 529 overloaded",
                )
            ),
        ]
    if mode == "killed":
        cut = line(assistant("msg_03", [{"type": "text", "text": "Now"}], MSG2))
        return [*messages(), cut[: len(cut) // 2]]
    if mode == "huge":
        body = messages()
        return [*body[:4], line(tool_result("x" * HUGE)), *body[4:], line(result())]
    if mode == "garbage":
        body = messages()
        return [
            b"npm WARN deprecated inflight@1.0.6\n",
            body[0],
            b"\xff\xfe\x00binary junk \xc3\x28\n",
            b'{"type":"result","subtype":"succ\n',  # cut by a crash of its writer
            body[1],
            b"[1, 2, 3]\n",
            b"\n",
            line(json.loads(body[2]), spaced=True),
            body[3],
            # Another key order: parsed whole.
            json.dumps({"message": json.loads(body[4])["message"], "type": "assistant"}).encode()
            + b"\n",
            b"   \t\n",
            line(result()).replace("ï".encode(), b"\xef"),  # not UTF-8 in the answer
        ]
    if mode == "wrongcost":
        return [*messages(), line(result(total_cost_usd="0.0421"))]
    raise SystemExit(f"unknown mode {mode!r}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="normal")
    ap.add_argument("--delay", type=float, default=0.002)
    args = ap.parse_args()
    out = sys.stdout.fileno()
    for n, chunk in enumerate(stream(args.mode)):
        # Pieces cut at different points of each line: a reader must join them.
        cuts = sorted({len(chunk) // 3, (len(chunk) * (n % 3 + 1)) // 4})
        for a, b in zip([0, *cuts], [*cuts, len(chunk)], strict=True):
            piece = memoryview(chunk)[a:b]
            while piece:
                piece = piece[os.write(out, piece) :]
            time.sleep(args.delay)
    if args.mode == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
