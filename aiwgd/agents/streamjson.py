"""What an agent's `--output-format stream-json` says, read as it streams.

Claude Code writes one JSON object per line: a `system`/`init` line with the session id,
`assistant` lines (one per content block, each with its message's token `usage`),
`user` lines (tool results: most of the bytes), and at the end one `result` line with
the answer and the totals. The parser observes the bytes the task log gets unchanged:
it never holds output back, and nothing in the stream can make it raise.

It is on the daemon's output path, so it looks at as few bytes as it can: a memchr for
each line end, the line's first bytes for its type, and then
- `user` lines and any other type it has no use for: nothing more;
- `system` and `result` lines (a few per run): a full `json.loads`;
- `assistant` lines: only the message id and model in the line's head and the `usage`
  object in its tail are decoded, never the content (a file the agent writes can be
  tens of KB); a line where they are not found that way is parsed whole.
Lines of another key order (`{"message":..., "type":...}`) are parsed whole.

Bounded memory: a line longer than MAX_LINE is skipped (counted in `huge_lines`), its
bytes dropped as they come until its newline; the partial-line buffer never holds more
than MAX_LINE bytes. Lines that are not JSON (an agent's stray prints) are counted and
left alone; bytes that are not UTF-8 are replaced in the strings that are kept.

Cost: the result line's `total_cost_usd` when it came; before that (and when it never
comes: the agent was killed) the running estimate from the assistant messages' usage,
priced by aiwgd.agents.usage, so a budget can stop a runaway agent. Repeated lines of
one message (one per content block, the same usage each) are counted once, by id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiwgd.agents.usage import TOKEN_KEYS, ZERO, Tokens, add, as_dict, price_for, sub, tokens_from

__all__ = ["MAX_LINE", "AgentRun", "StreamJsonParser"]

log = logging.getLogger("aiwgd.agents")

MAX_LINE = 1024 * 1024  # longer lines are skipped, never buffered
# Where an assistant line keeps what is read of it: the message id and model come
# before the content, the usage after it, followed only by a few short fields.
HEAD_WINDOW = 512
TAIL_WINDOW = 4096
RECENT_MESSAGES = 64  # message ids remembered to count a message's repeated lines once

_TYPED = b'{"type":"'
_TYPED_SPACED = b'{"type": "'  # Python's json.dumps default separators
_ID_RE = re.compile(rb'"id": ?"([^"\\]{1,256})"')
_MODEL_RE = re.compile(rb'"model": ?"([^"\\]{1,256})"')
_CONTENT = b'"content"'
_USAGE = b'"usage":'
_WHITESPACE = b" \t\r"
_DECODER = json.JSONDecoder()


def _zero_usage() -> dict[str, int]:
    return dict.fromkeys(TOKEN_KEYS, 0)


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
    usage: dict[str, int] = field(default_factory=_zero_usage)
    problems: int = 0  # lines that looked like JSON events but could not (all) be used
    subtype: str | None = None  # the result's: success, error_max_turns, ...
    model: str | None = None
    cost_estimated: bool = False  # cost_usd (or part of it) is the estimate from usage
    lines: int = 0  # complete lines seen
    non_json_lines: int = 0  # lines that do not start like a JSON object
    huge_lines: int = 0  # lines over MAX_LINE, skipped unparsed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _number(value: Any) -> bool:
    # bool is an int subclass: `true` is not a number of anything.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _in_string(data: bytes, pos: int, start: int) -> bool:
    """Whether the quote at `pos` is escaped (odd run of backslashes before it)."""
    j = pos - 1
    while j >= start and data[j] == 0x5C:
        j -= 1
    return (pos - 1 - j) % 2 == 1


def _loads(line: bytes) -> Any:
    """The JSON value of `line`; raises ValueError if it is none."""
    try:
        return json.loads(line)
    except UnicodeDecodeError:
        return json.loads(line.decode("utf-8", errors="replace"))
    except RecursionError as exc:  # nesting deeper than the C scanner goes
        raise ValueError("nested too deep") from exc


class StreamJsonParser:
    """Feed it the agent's output bytes in any chunks; read `run` at any time.

    `on_change(run)` is called when the session id or the cost changes (budgets, live
    display); it gets the live AgentRun (take `to_dict()` to keep a copy). An exception
    it raises is logged, never let into the output path.
    """

    def __init__(self, on_change: Callable[[AgentRun], None] | None = None) -> None:
        self.on_change = on_change
        self._run = AgentRun()
        self._buf = bytearray()  # the current line's start, never over MAX_LINE
        self._skipping = False  # inside a huge line: dropping bytes up to its newline
        self._closed = False
        # The totals of the last result line, and what the assistant messages after it
        # add (all of them when no result came).
        self._base_tokens: Tokens = ZERO
        self._base_cost: float | None = None
        self._base_estimated = False
        self._est_tokens: Tokens = ZERO
        self._est_cost = 0.0
        self._est_seen = False
        self._recent: dict[bytes, tuple[Tokens, float]] = {}
        self._last_usage: tuple[bytes, bytes] | None = None  # (message id, usage bytes)

    @property
    def run(self) -> AgentRun:
        return self._run

    def feed(self, data: bytes) -> None:
        """Observe the next bytes of output (after close(): ignored)."""
        if self._closed or not data:
            return
        start = 0
        find = data.find
        if self._skipping or self._buf:
            j = find(b"\n")
            if j < 0:
                self._hold(data, 0)
                return
            self._run.lines += 1
            if self._skipping:  # the huge line ends here; it was counted when it began
                self._skipping = False
            elif len(self._buf) + j > MAX_LINE:
                self._buf.clear()
                self._huge()
            else:
                self._buf += memoryview(data)[:j]
                line = bytes(self._buf)
                self._buf.clear()
                self._line(line, 0, len(line))
            start = j + 1
        line_at = self._line
        while True:
            j = find(b"\n", start)
            if j < 0:
                break
            self._run.lines += 1
            if j - start > MAX_LINE:
                self._huge()
            elif j > start:
                line_at(data, start, j)
            start = j + 1
        if start < len(data):
            self._hold(data, start)

    def close(self) -> AgentRun:
        """End of stream: the last line, if cut off without a newline, counts only if it
        is complete JSON (an agent killed mid-write leaves half a line)."""
        if self._closed:
            return self._run
        self._closed = True
        line = bytes(self._buf).strip()
        self._buf.clear()
        if self._skipping or not line:
            return self._run
        if not line.startswith(b"{"):
            self._run.lines += 1
            self._run.non_json_lines += 1
            return self._run
        with contextlib.suppress(ValueError):
            obj = _loads(line)
            if isinstance(obj, dict):  # a whole object, not a cut one that happens to parse
                self._run.lines += 1
                self._event(obj)
        return self._run

    # ---- lines ---------------------------------------------------------------------

    def _hold(self, data: bytes, start: int) -> None:
        """Keep a line's start for the next chunk, unless it grew past MAX_LINE."""
        if self._skipping:
            return
        if len(self._buf) + len(data) - start > MAX_LINE:
            self._buf.clear()
            self._skipping = True
            self._huge()
        else:
            self._buf += memoryview(data)[start:]

    def _huge(self) -> None:
        self._run.huge_lines += 1

    def _line(self, data: bytes, s: int, e: int) -> None:
        """One complete, non-empty line: data[s:e]."""
        if data.startswith(_TYPED, s):
            t = s + 9
        elif data.startswith(_TYPED_SPACED, s):
            t = s + 10
        else:
            first = data[s]
            if first in _WHITESPACE:
                line = data[s:e].strip()
                if not line:
                    return
                first = line[0]
            if first == 0x7B:  # "{": another key order, or spaces: parse it whole
                self._parse(data[s:e])
            else:
                self._run.non_json_lines += 1
            return
        if data.startswith(b'assistant"', t):
            self._assistant(data, s, e)
        elif data.startswith(b'result"', t) or data.startswith(b'system"', t):
            self._parse(data[s:e])
        # Any other type (user: tool results) carries nothing used here.

    def _parse(self, line: bytes) -> None:
        try:
            obj = _loads(line)
        except ValueError:
            self._run.problems += 1
            return
        if isinstance(obj, dict):
            self._event(obj)
        else:
            self._run.problems += 1

    def _event(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        if kind == "system":
            self._system(obj)
        elif kind == "result":
            self._result(obj)
        elif kind == "assistant":
            self._assistant_obj(obj)
        elif not isinstance(kind, str):
            self._run.problems += 1

    def _assistant(self, data: bytes, s: int, e: int) -> None:
        """The usage of an assistant line without decoding its content."""
        lo = max(s, e - TAIL_WINDOW)
        k = data.rfind(_USAGE, lo, e)
        while k >= 0 and _in_string(data, k, s):
            k = data.rfind(_USAGE, lo, k)
        if k < 0:
            self._parse(data[s:e])
            return
        head_end = min(e, s + HEAD_WINDOW)
        content = data.find(_CONTENT, s, head_end)
        if content >= 0:
            head_end = content
        m = _ID_RE.search(data, s, head_end)
        msg_id = m.group(1) if m else None
        raw = data[k + len(_USAGE) : e]
        if msg_id is not None:
            # The next content block of the same message: the same usage again.
            if self._last_usage == (msg_id, raw):
                return
            self._last_usage = (msg_id, raw)
        try:
            usage, _ = _DECODER.raw_decode(raw.decode("utf-8", errors="replace").lstrip())
        except ValueError:
            self._run.problems += 1
            return
        m = _MODEL_RE.search(data, s, head_end)
        model = m.group(1).decode("utf-8", errors="replace") if m else None
        self._message(msg_id, model, usage)

    def _assistant_obj(self, obj: dict[str, Any]) -> None:
        message = obj.get("message")
        if not isinstance(message, dict):
            self._run.problems += 1
            return
        if "usage" not in message:
            return
        msg_id = message.get("id")
        model = message.get("model")
        self._message(
            msg_id.encode("utf-8", errors="replace") if isinstance(msg_id, str) else None,
            model if isinstance(model, str) else None,
            message["usage"],
        )

    def _message(self, msg_id: bytes | None, model: str | None, usage: Any) -> None:
        """Count one assistant message's usage (again: its latest usage replaces)."""
        got = tokens_from(usage)
        if got is None:
            self._run.problems += 1
            return
        tokens, ok = got
        if not ok:
            self._run.problems += 1
        if model is not None:
            self._run.model = model
        cost = price_for(self._run.model).cost(tokens)
        if msg_id is not None:
            old = self._recent.pop(msg_id, None)
            if old is not None:
                self._est_tokens = sub(self._est_tokens, old[0])
                self._est_cost -= old[1]
            self._recent[msg_id] = (tokens, cost)
            if len(self._recent) > RECENT_MESSAGES:
                del self._recent[next(iter(self._recent))]
        self._est_tokens = add(self._est_tokens, tokens)
        self._est_cost += cost
        self._est_seen = True
        self._totals(session_changed=False)

    def _system(self, obj: dict[str, Any]) -> None:
        if obj.get("subtype") != "init":
            return
        sid = obj.get("session_id")
        model = obj.get("model")
        if isinstance(model, str):
            self._run.model = model
        if isinstance(sid, str) and sid:
            if sid != self._run.session_id:
                self._run.session_id = sid
                self._notify()
        else:
            self._run.problems += 1

    def _result(self, obj: dict[str, Any]) -> None:
        run = self._run
        bad = False

        def take(key: str, ok: Callable[[Any], bool]) -> Any:
            nonlocal bad
            if key not in obj:
                return None
            value = obj[key]
            if ok(value):
                return value
            bad = True
            return None

        subtype = take("subtype", lambda v: isinstance(v, str))
        is_error = take("is_error", lambda v: isinstance(v, bool))
        answer = take("result", lambda v: isinstance(v, str))
        turns = take("num_turns", _count)
        duration = take("duration_ms", _count)
        cost = take("total_cost_usd", lambda v: _number(v) and math.isfinite(v) and v >= 0)
        sid = take("session_id", lambda v: isinstance(v, str) and bool(v))
        got = tokens_from(obj["usage"]) if "usage" in obj else None
        if "usage" in obj and (got is None or not got[1]):
            bad = True
        if bad:
            run.problems += 1
        run.subtype = subtype if subtype is not None else run.subtype
        run.is_error = is_error if is_error is not None else run.is_error
        run.result = answer if answer is not None else run.result
        run.turns = turns if turns is not None else run.turns
        run.duration_ms = duration if duration is not None else run.duration_ms
        # The result's totals replace what was estimated; a total it lacks (or that is
        # unusable) keeps the estimate, carried into the base the next messages add to.
        if cost is not None:
            self._base_cost = float(cost)
            self._base_estimated = False
        elif self._est_seen:
            self._base_cost = (self._base_cost or 0.0) + self._est_cost
            self._base_estimated = True
        if got is not None and got[1]:
            self._base_tokens = got[0]
        else:
            self._base_tokens = add(self._base_tokens, self._est_tokens)
        self._est_tokens, self._est_cost, self._est_seen = ZERO, 0.0, False
        self._recent.clear()
        self._last_usage = None
        session_changed = sid is not None and run.session_id is None
        if session_changed:
            run.session_id = sid
        self._totals(session_changed)

    # ---- totals --------------------------------------------------------------------

    def _totals(self, session_changed: bool) -> None:
        run = self._run
        run.usage = as_dict(add(self._base_tokens, self._est_tokens))
        run.cost_estimated = self._est_seen or self._base_estimated
        if self._base_cost is None and not self._est_seen:
            cost = None
        elif run.cost_estimated:
            # Sums of small floats: keep the figure free of 1e-17 noise.
            cost = round((self._base_cost or 0.0) + self._est_cost, 9)
        else:
            cost = self._base_cost
        if cost != run.cost_usd or session_changed:
            run.cost_usd = cost
            self._notify()

    def _notify(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(self._run)
        except Exception:
            log.exception("agent run on_change callback failed")
