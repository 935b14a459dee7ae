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

Cheap mode (`estimate=False`, the executor's choice when no budget needs the running
estimate): per-line work in Python is what costs, so once the session id is known it
no longer walks the lines. Per chunk it finds the last line end (a memrchr) and looks
only at a line whose head (seen when it began, at the end of a chunk) is a result's or
a system line's, and at the line that ends the chunk. Claude Code's result line is its
last, so it is found; a result followed by other lines in the same chunk is not (nor
any assistant usage): `settled` then stays False and the caller reads the figures from
the task log (aiwgd.agents.logcost). Until the session id is known the lines are walked
as in the full mode, assistant lines skipped. In this mode `lines`, `non_json_lines`,
`huge_lines` and `problems` count only the lines looked at, and `model` is the init
line's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiwgd.agents.streamformat import (
    _ASSISTANT,
    _ASSISTANT_HEAD,
    _CLAUDE_HEAD,
    _CLAUDE_USAGE,
    _DECODER,
    _ID_RE,
    _MARKED,
    _MODEL_RE,
    _PARSE,
    _RESULT_FIELDS,
    _SKIP,
    _TYPED_ANY,
    _USAGE,
    _USER,
    _WANTED,
    _WHITESPACE,
    HEAD_WINDOW,
    MAX_LINE,
    TAIL_WINDOW,
    AgentRun,
    _in_string,
    _kind,
    _loads,
)
from aiwgd.agents.usage import Ledger, as_dict, tokens_from

__all__ = ["MAX_LINE", "AgentRun", "StreamJsonParser"]

log = logging.getLogger("aiwgd.agents")


class StreamJsonParser:
    """Feed it the agent's output bytes in any chunks; read `run` at any time.

    `on_change(run)` is called at the end of a feed() (or close()) that changed the
    session id or the cost: once per chunk at most, however many messages it held. It
    gets the live AgentRun (take `to_dict()` to keep a copy); an exception it raises is
    logged, never let into the output path.
    """

    def __init__(
        self, on_change: Callable[[AgentRun], None] | None = None, estimate: bool = True
    ) -> None:
        self.on_change = on_change
        self.estimate = estimate  # False: the cheap mode (module docstring)
        # A result line gave the totals (its cost and usage) and nothing was missed
        # since: the run needs nothing from the log (read only in the cheap mode).
        self.settled = False
        self._run = AgentRun()
        self._ledger = Ledger()
        self._buf = bytearray()  # the current line's start, never over MAX_LINE
        # Dropping bytes up to the next newline: a huge line, or one whose first bytes
        # said nothing in it is used (not kept across chunks: that is a copy per chunk).
        self._dropping = False
        self._drop_len = 0  # of a line dropped as of no use: still checked against MAX_LINE
        self._closed = False
        self._dirty = False  # the ledger changed since the run was last brought up to date
        self._told: tuple[str | None, float | None] = (None, None)  # what on_change last saw

    @property
    def run(self) -> AgentRun:
        return self._run

    def feed(self, data: bytes) -> None:
        """Observe the next bytes of output (after close(): ignored)."""
        if self._closed or not data:
            return
        if not self.estimate and self._run.session_id is not None:
            self._feed_last(data)
            return
        start = lines = 0
        find = data.find
        if self._dropping or self._buf:
            j = find(b"\n")
            if j < 0:
                self._hold(data, 0)
                return
            lines += 1
            if self._dropping:
                self._dropping = False
                self._drop(j)
            elif len(self._buf) + j > MAX_LINE:
                self._buf.clear()
                self._run.huge_lines += 1
            else:
                self._buf += memoryview(data)[:j]
                line = bytes(self._buf)
                self._buf.clear()
                self._line(line, 0, len(line))
            start = j + 1
        line_at, starts = self._line, data.startswith
        while (j := find(b"\n", start)) >= 0:
            lines += 1
            if j - start > MAX_LINE:
                self._run.huge_lines += 1
            elif j > start and not starts(_USER, start):  # the bulk of the bytes, unused
                line_at(data, start, j)
            start = j + 1
        self._run.lines += lines
        if start < len(data):
            self._hold(data, start)
        if self._dirty:
            self._update()

    def _feed_last(self, data: bytes) -> None:
        """The cheap mode: a line is looked at only if its head is a result's or a
        system line's and it ends in a later chunk, or it ends the chunk; every other
        line ending here is passed over unseen (`settled` says whether one was)."""
        n = len(data)
        last = data.rfind(b"\n")
        if last < 0:
            if not self._dropping:
                self._hold(data, 0)
            return
        self.settled = False  # set again if the chunk's last line is a result
        carried = self._dropping or bool(self._buf)  # a line began in an earlier chunk
        done = -1  # the end of the line carried in, if it was looked at
        if self._buf:
            done = data.find(b"\n")
            if len(self._buf) + done > MAX_LINE:
                self._run.huge_lines += 1
                self._buf.clear()
            else:
                self._buf += memoryview(data)[:done]
                line = bytes(self._buf)
                self._buf.clear()
                self._line(line, 0, len(line))
                if done != last:
                    self.settled = False
        self._dropping = False
        s = data.rfind(b"\n", 0, last) + 1 if last == n - 1 and done != last else -1
        if s > 0 or (s == 0 and not carried):
            if last - s > MAX_LINE:
                self._run.huge_lines += 1
            elif data.startswith(_WANTED, s) or (last > s and not data.startswith(_TYPED_ANY, s)):
                self._line(data, s, last)
        elif last + 1 < n:
            s = last + 1
            if n - s >= 32 and data.startswith(_TYPED_ANY, s) and not data.startswith(_WANTED, s):
                self._dropping = True  # of no use to this mode: not kept
            else:
                self._hold(data, s)
        if self._dirty:
            self._update()

    def close(self) -> AgentRun:
        """End of stream: the last line, if cut off without a newline, counts only if it
        is complete JSON (an agent killed mid-write leaves half a line)."""
        if self._closed:
            return self._run
        self._closed = True
        line = bytes(self._buf).strip()
        self._buf.clear()
        if self._dropping or not line:
            return self._run
        if not line.startswith(b"{"):
            self._run.lines += 1
            self._run.non_json_lines += 1
            return self._run
        try:
            obj = _loads(line)
        except ValueError:
            return self._run  # half a line: not one
        self._run.lines += 1
        if isinstance(obj, dict):
            self._event(obj)
        else:
            self._run.problems += 1
        self._update()
        return self._run

    # ---- lines ---------------------------------------------------------------------

    def _hold(self, data: bytes, start: int) -> None:
        """Keep a line's start for the next chunk, unless it is too long or of no use."""
        if self._dropping:
            self._drop(len(data))
        elif not self._buf and len(data) - start >= 32 and self._unused(_kind(data, start)):
            self.settled = False
            self._dropping, self._drop_len = True, 0
            self._drop(len(data) - start)
        elif len(self._buf) + len(data) - start > MAX_LINE:
            self._buf.clear()
            self._dropping, self._drop_len = True, -1
            self._run.huge_lines += 1
        else:
            self._buf += memoryview(data)[start:]

    def _unused(self, kind: int) -> bool:
        return kind == _SKIP or (kind == _ASSISTANT and not self.estimate)

    def _drop(self, n: int) -> None:
        """`n` more bytes of the line being dropped; -1: it was counted as huge."""
        if self._drop_len >= 0:
            self._drop_len += n
            if self._drop_len > MAX_LINE:
                self._drop_len = -1
                self._run.huge_lines += 1

    def _line(self, data: bytes, s: int, e: int) -> None:
        """One complete, non-empty line: data[s:e]."""
        self.settled = False  # a result line sets it again; any other line came after one
        if data.startswith(_ASSISTANT_HEAD, s):
            if self.estimate:
                self._assistant(data, s, e)
            return
        kind = _kind(data, s)
        if self._unused(kind):
            return
        if kind == _ASSISTANT:
            self._assistant(data, s, e)
        elif kind == _PARSE:
            self._parse(data[s:e])
        else:
            first = data[s]
            if first in _WHITESPACE:
                line = data[s:e].strip()
                if not line:
                    return
                first = line[0]
            if first == 0x7B:  # "{": another key order, or spaces: parse it whole
                if self.estimate or _MARKED.search(data, s, e) is not None:
                    self._parse(data[s:e])
            else:
                self._run.non_json_lines += 1

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
            if self.estimate:
                self._assistant_obj(obj)
        elif not isinstance(kind, str):
            self._run.problems += 1

    # ---- events --------------------------------------------------------------------

    def _assistant(self, data: bytes, s: int, e: int) -> None:
        """The usage of an assistant line, without decoding its content."""
        lo = max(s, e - TAIL_WINDOW)
        k = data.rfind(_USAGE, lo, e)
        while k > s and data[k - 1] == 0x5C and _in_string(data, k, s):
            k = data.rfind(_USAGE, lo, k)
        if k < 0:
            self._parse(data[s:e])
            return
        k += len(_USAGE)
        head_end = min(e, s + HEAD_WINDOW)
        head = _CLAUDE_HEAD.match(data, s, head_end)
        if head is not None:
            msg_id, model = head.group(1, 2)
        else:
            m = _ID_RE.search(data, s, head_end)
            msg_id = m.group(1) if m else None
            m = _MODEL_RE.search(data, s, head_end)
            model = m.group(1) if m else None
        name = model.decode("utf-8", errors="replace") if model else None
        fast = _CLAUDE_USAGE.match(data, k, e)
        if fast is not None:
            inp, write, read, out = fast.group(1, 2, 3, 4)
            self._ledger.message(msg_id, name, (int(inp), int(out), int(write), int(read)))
            self._dirty = True
            return
        try:  # another shape: the usage object decoded alone, up to its closing brace
            usage, _ = _DECODER.raw_decode(data[k:e].decode("utf-8", errors="replace").lstrip())
        except ValueError:
            self._run.problems += 1
            return
        self._message(msg_id, name, usage)

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
        got = tokens_from(usage)
        if got is None:
            self._run.problems += 1
            return
        if not got[1]:
            self._run.problems += 1
        self._ledger.message(msg_id, model, got[0])
        self._dirty = True

    def _system(self, obj: dict[str, Any]) -> None:
        if obj.get("subtype") != "init":
            return
        sid = obj.get("session_id")
        model = obj.get("model")
        if isinstance(model, str):
            self._ledger.use_model(model)
            self._dirty = True
        if isinstance(sid, str) and sid:
            self._run.session_id = sid
            self._dirty = True
        else:
            self._run.problems += 1

    def _result(self, obj: dict[str, Any]) -> None:
        run = self._run
        got: dict[str, Any] = {}
        bad = False
        for key, ok in _RESULT_FIELDS.items():
            if key in obj:
                if ok(obj[key]):
                    got[key] = obj[key]
                else:
                    bad = True
        tokens = tokens_from(obj["usage"]) if "usage" in obj else None
        if "usage" in obj and (tokens is None or not tokens[1]):
            bad, tokens = True, None
        run.problems += int(bad)
        run.subtype = got.get("subtype", run.subtype)
        run.is_error = got.get("is_error", run.is_error)
        run.result = got.get("result", run.result)
        run.turns = got.get("num_turns", run.turns)
        run.duration_ms = got.get("duration_ms", run.duration_ms)
        run.session_id = run.session_id or got.get("session_id")
        cost = got.get("total_cost_usd")
        self.settled = cost is not None and tokens is not None
        self._ledger.result(
            None if cost is None else float(cost), None if tokens is None else tokens[0]
        )
        self._dirty = True

    # ---- the run's totals ----------------------------------------------------------

    def _update(self) -> None:
        """Bring the run's totals up to date (once per chunk, not per message)."""
        self._dirty = False
        run, ledger = self._run, self._ledger
        run.usage = as_dict(ledger.tokens())
        run.cost_usd = ledger.cost()
        run.cost_estimated = ledger.estimated
        run.model = ledger.model
        told = (run.session_id, run.cost_usd)
        if told != self._told:
            self._told = told
            if self.on_change is not None:
                try:
                    self.on_change(run)
                except Exception:
                    log.exception("agent run on_change callback failed")
