"""Claude Code's `--output-format stream-json`, line by line: what a line is from its
first bytes, what a result line's fields must be, and the AgentRun the parser fills
(aiwgd.agents.streamjson reads the stream with these).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiwgd.agents.usage import TOKEN_KEYS

MAX_LINE = 1024 * 1024  # longer lines are skipped, never buffered
# Where an assistant line keeps what is read of it: the message id and model come
# before the content, the usage after it, followed only by a few short fields.
HEAD_WINDOW = 512
TAIL_WINDOW = 4096

_TYPED = b'{"type":"'
_TYPED_SPACED = b'{"type": "'  # Python's json.dumps default separators
_USER = b'{"type":"user"'
_TYPED_ANY = (_TYPED, _TYPED_SPACED)
# The heads of the lines the cheap mode takes (the module docstring).
_WANTED = tuple(t + k for t in _TYPED_ANY for k in (b'result"', b'system"'))
_ASSISTANT_HEAD = b'{"type":"assistant"'
_ID_RE = re.compile(rb'"id": ?"([^"\\]{1,256})"')
_MODEL_RE = re.compile(rb'"model": ?"([^"\\]{1,256})"')
_USAGE = b'"usage":'
# Claude Code's own lines, key for key (JSON.stringify keeps the order): matched in one
# step; any other shape goes the general way (a search, a JSON decode).
_CLAUDE_HEAD = re.compile(
    rb'\{"type":"assistant","message":\{"id":"([^"\\]{1,256})","type":"message",'
    rb'"role":"assistant","model":"([^"\\]{1,256})"'
)
_CLAUDE_USAGE = re.compile(
    rb'\{"input_tokens":(\d{1,15}),"cache_creation_input_tokens":(\d{1,15}),'
    rb'"cache_read_input_tokens":(\d{1,15}),(?:"cache_creation":\{[^{}]*\},)?'
    rb'"output_tokens":(\d{1,15})[,}]'
)
_WHITESPACE = b" \t\r"
# What a line of another key order must hold to be parsed in the cheap mode (a type the
# cheap mode takes; inside a JSON string the quotes would be escaped).
_MARKED = re.compile(rb'"type"\s*:\s*"(?:result|system)"')
_DECODER = json.JSONDecoder()

# What a line's first bytes say it is.
_SKIP = 0  # a typed event nothing is taken from (user: tool results, most of the bytes)
_ASSISTANT = 1
_PARSE = 2  # system, result: parsed whole
_UNTYPED = 3  # does not start with `{"type":`: another key order, or not JSON


@dataclass
class AgentRun:
    """What the stream said so far; JSON-able via to_dict()."""

    session_id: str | None = None
    result: str | None = None  # the agent's final answer
    is_error: bool | None = None  # true: the task failed, even on exit 0
    turns: int | None = None
    duration_ms: int | None = None
    # total_cost_usd when the result line came; else the running estimate (None if
    # nothing is known yet)
    cost_usd: float | None = None
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_KEYS, 0))
    problems: int = 0  # lines that looked like JSON events but could not (all) be used
    subtype: str | None = None  # the result's: success, error_max_turns, ...
    model: str | None = None
    cost_estimated: bool = False  # cost_usd (or part of it) is the estimate from usage
    lines: int = 0  # complete lines seen
    non_json_lines: int = 0  # lines that do not start like a JSON object
    huge_lines: int = 0  # lines over MAX_LINE, skipped unparsed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# What a result line's fields must be to be taken; one that is not is a problem.
# (`type(v) is int`, not isinstance: bool is an int subclass, and `true` is no count.)
_RESULT_FIELDS: dict[str, Callable[[Any], bool]] = {
    "subtype": lambda v: isinstance(v, str),
    "is_error": lambda v: isinstance(v, bool),
    "result": lambda v: isinstance(v, str),
    "num_turns": lambda v: type(v) is int and v >= 0,
    "duration_ms": lambda v: type(v) is int and v >= 0,
    "total_cost_usd": lambda v: type(v) in (int, float) and math.isfinite(v) and v >= 0,
    "session_id": lambda v: isinstance(v, str) and bool(v),
}


def _in_string(data: bytes, pos: int, start: int) -> bool:
    """Whether the quote at `pos` is escaped (odd run of backslashes before it)."""
    j = pos - 1
    while j >= start and data[j] == 0x5C:
        j -= 1
    return (pos - 1 - j) % 2 == 1


def _loads(line: bytes) -> Any:
    """The JSON value of `line`; raises ValueError if it is none."""
    try:
        try:
            return json.loads(line)
        except UnicodeDecodeError:
            return json.loads(line.decode("utf-8", errors="replace"))
    except RecursionError as exc:  # nesting deeper than the C scanner goes
        raise ValueError("nested too deep") from exc


def _kind(data: bytes, s: int) -> int:
    """What the line starting at data[s] is, from its first bytes."""
    if data.startswith(_TYPED, s):
        t = s + 9
    elif data.startswith(_TYPED_SPACED, s):
        t = s + 10
    else:
        return _UNTYPED
    if data.startswith(b'assistant"', t):
        return _ASSISTANT
    if data.startswith(b'result"', t) or data.startswith(b'system"', t):
        return _PARSE
    return _SKIP
