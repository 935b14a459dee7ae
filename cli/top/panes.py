"""The panes of `aiwg top`: DataTables that fit their width, and the rows they show.

Every column but the last has a fixed width; the last takes what is left of the
pane's width, so nothing overflows sideways at 80 columns (a cell longer than its
column is cut with "…"). Rows are replaced by key: a row whose cells did not change is
left alone, so the cursor stays on the same task or service while events arrive.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from textual.widgets import DataTable

from aiwgd.cli.monitor import size
from aiwgd.cli.render import duration, fit
from aiwgd.cli.top.state import TopState, elapsed

CELL_PAD = 2  # DataTable's cell_padding=1 on both sides
SCROLLBAR = 1  # top.tcss sets scrollbar-size-vertical: 1; kept free even when hidden


class Column(NamedTuple):
    key: str
    label: str
    width: int  # 0: the rest of the pane's width


class Row(NamedTuple):
    key: str
    cells: tuple[str, ...]


class Pane(DataTable[str]):
    """A table of rows keyed by id, with a filter and columns that fit the pane."""

    def __init__(self, columns: list[Column], *, id: str) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.spec = columns
        self._width = 0
        self._rows: list[Row] = []
        self._shown: list[Row] = []
        self.filter = ""

    def widths(self, total: int) -> list[int]:
        fixed = sum(c.width + CELL_PAD for c in self.spec if c.width)
        rest = max(4, total - fixed - CELL_PAD - SCROLLBAR)
        return [c.width or rest for c in self.spec]

    def on_resize(self) -> None:
        if self.size.width != self._width:
            self._width = self.size.width
            keep = self.selected() if self.columns else None
            self.clear(columns=True)
            for col, w in zip(self.spec, self.widths(self._width), strict=True):
                self.add_column(col.label, width=w, key=col.key)
            self._shown = []
            self._draw(keep)

    def show(self, rows: Iterable[Row]) -> None:
        self._rows = list(rows)
        self._draw()

    def set_filter(self, text: str) -> None:
        self.filter = text.lower()
        self._draw()

    def selected(self) -> str | None:
        """The key of the row under the cursor (None: the pane is empty)."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return None if key is None else str(key)

    def _draw(self, keep: str | None = None) -> None:
        """Show the rows that pass the filter; the cursor stays on `keep` (default:
        the row it is on) when the rows change."""
        if not self.columns:
            return  # not laid out yet: on_resize draws
        widths = [c.width for c in self.columns.values()]
        shown = [
            Row(r.key, tuple(fit(c, w) for c, w in zip(r.cells, widths, strict=True)))
            for r in self._rows
            if not self.filter or self.filter in " ".join(r.cells).lower()
        ]
        if [r.key for r in shown] == [r.key for r in self._shown]:
            keys = [c for c in self.columns]
            for old, new in zip(self._shown, shown, strict=True):
                for i, (a, b) in enumerate(zip(old.cells, new.cells, strict=True)):
                    if a != b:
                        self.update_cell(new.key, keys[i], b)
        else:
            keep = keep or self.selected()
            self.clear()
            for r in shown:
                self.add_row(*r.cells, key=r.key)
            where = [r.key for r in shown]
            if keep in where:
                self.move_cursor(row=where.index(keep), animate=False)
        self._shown = shown


TASK_COLUMNS = [
    Column("task", "TASK", 14),
    Column("state", "STATE", 9),
    Column("elapsed", "ELAPSED", 7),
    Column("cost", "COST", 6),
    Column("output", "LAST OUTPUT", 0),
]
SERVICE_COLUMNS = [
    Column("service", "SERVICE", 14),
    Column("state", "STATE", 8),
    Column("pid", "PID", 7),
    Column("cpu", "CPU%", 5),
    Column("mem", "MEM", 6),
    Column("health", "HEALTH", 9),
    Column("restarts", "RESTARTS", 0),
]
EVENT_COLUMNS = [
    Column("time", "TIME", 8),
    Column("type", "EVENT", 20),
    Column("subject", "SUBJECT", 0),
]


def task_rows(st: TopState) -> list[Row]:
    now = time.time()
    rows = []
    for t in st.visible_tasks():
        state = str(t.get("state"))
        if t.get("paused"):
            state = "paused"
        cost = t.get("cost_usd")
        out = st.output.get(t["id"])
        rows.append(
            Row(
                t["id"],
                (
                    str(t.get("name") or t["id"]),
                    state,
                    duration(elapsed(t, now)),
                    f"${cost:.2f}" if isinstance(cost, int | float) else "-",
                    out.shown() if out else _what(t),
                ),
            )
        )
    return rows


def _what(t: dict[str, Any]) -> str:
    """Before any output: what the task runs (its queued reason, if it waits for one)."""
    if t.get("queued_reason"):
        return str(t["queued_reason"])
    if t.get("command"):
        return " ".join(str(a) for a in t["command"])
    return str(t.get("prompt") or "")


def service_rows(st: TopState) -> list[Row]:
    rows = []
    for name in sorted(st.services):
        s = st.services[name]
        cpu = s.get("cpu_percent")
        rows.append(
            Row(
                name,
                (
                    name,
                    str(s.get("state") or "-"),
                    str(s.get("pid") or "-"),
                    f"{cpu:.0f}" if isinstance(cpu, int | float) else "-",
                    size(s.get("rss_bytes")),
                    str(s.get("health") or "-"),
                    str(s.get("restarts") or 0),
                ),
            )
        )
    return rows


def event_rows(st: TopState) -> list[Row]:
    rows = []
    for ev in st.events:
        stamp = ev.get("time")
        when = time.strftime("%H:%M:%S", time.localtime(stamp)) if stamp else "-"
        rows.append(Row(str(ev.get("id")), (when, str(ev.get("type")), _subject(ev))))
    return rows


def _subject(ev: dict[str, Any]) -> str:
    data = ev.get("data") or {}
    parts = [str(data[k]) for k in ("id", "name", "owner", "reason", "error") if data.get(k)]
    return " ".join(parts)


def summary(st: TopState) -> str:
    """The two header lines: the daemon, the cap and groups; the machine."""
    if not st.connected:
        return f"daemon not running: retrying every few seconds\n{st.down_reason}"
    running, queued = st.counts()
    cap = st.stats.get("cap", "?")
    d = st.daemon
    started = d.get("started_at")
    up = time.time() - started if isinstance(started, int | float) else None
    first = f"aiwgd pid {d.get('pid', '?')} up {duration(up)}  "
    first += f"tasks {running}/{cap} running, {queued} queued"
    for name, g in sorted((st.stats.get("groups") or {}).items()):
        cap_g = g.get("max_parallel")
        first += f"  {name} {g.get('running', 0)}/{cap_g if cap_g is not None else '-'}"
    sysinfo = st.system
    if not sysinfo:
        return first + "\n"
    mem, cpu = sysinfo.get("memory", {}), sysinfo.get("cpu", {})
    load = " ".join(f"{x:.2f}" for x in sysinfo.get("load_average", []))
    second = (
        f"load {load}  cpu {cpu.get('percent', 0):.0f}% of {cpu.get('cores', '?')}  "
        f"mem {mem.get('used_percent', 0):.0f}% ({size(mem.get('available_bytes'))} free)"
    )
    return f"{first}\n{second}"
