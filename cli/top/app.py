"""`aiwg top`'s Textual App: the summary, the tasks, services and events panes, the keys.

The Feed (cli/top/feed.py) runs in the app's own asyncio loop and calls `changed()`
after each event, output chunk or refresh; the panes are redrawn once per burst (a
follow of a chatty task sends many chunks). Actions on the selected task or service
are RPC calls in workers: an error becomes a notification, never a traceback, and the
view never waits on the daemon.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Input, Static

from aiwgd.cli.top.feed import Feed
from aiwgd.cli.top.logview import LogScreen
from aiwgd.cli.top.panes import (
    EVENT_COLUMNS,
    SERVICE_COLUMNS,
    TASK_COLUMNS,
    Pane,
    event_rows,
    service_rows,
    summary,
    task_rows,
)
from aiwgd.client import ClientError

# Inline, not a .tcss file: the package data the wheel ships is py.typed only.
TOP_CSS = """
#summary {
    height: 2;
    padding: 0 1;
    background: $boost;
}
Pane {
    height: 1fr;
    min-height: 3;
    scrollbar-size-vertical: 1;
    overflow-x: hidden;
}
#events {
    height: 6;
    max-height: 6;
}
Pane:focus {
    background-tint: $foreground 5%;
}
#filter {
    dock: bottom;
    display: none;
    height: 3;
}
#logtitle {
    height: 1;
    padding: 0 1;
    background: $boost;
}
#log {
    height: 1fr;
}
"""
TICK_S = 1.0  # elapsed times move on screen; nothing is asked of the daemon for it


class TopApp(App[None]):
    CSS = TOP_CSS
    TITLE = "aiwg top"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("c", "cancel", "cancel task"),
        Binding("p", "pause", "pause/resume"),
        Binding("r", "restart", "restart service"),
        Binding("slash", "filter", "filter"),
        Binding("escape", "clear_filter", "clear filter", show=False),
    ]

    def __init__(self, socket_path: str) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.feed = Feed(socket_path, self.changed)
        self._pending = False

    def compose(self) -> ComposeResult:
        yield Static(summary(self.feed.state), id="summary")
        yield Pane(TASK_COLUMNS, id="tasks")
        yield Pane(SERVICE_COLUMNS, id="services")
        yield Pane(EVENT_COLUMNS, id="events")
        yield Input(placeholder="filter rows (Enter: keep, Escape: clear)", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#tasks", Pane).focus()
        self.run_worker(self.feed.run(), name="feed", exclusive=True, exit_on_error=False)
        self.set_interval(TICK_S, self.redraw)

    # -- drawing ---------------------------------------------------------------------
    def changed(self) -> None:
        """The state changed: redraw once, after the messages already queued."""
        if not self._pending:
            self._pending = True
            self.call_later(self.redraw)

    def redraw(self) -> None:
        self._pending = False
        st = self.feed.state
        try:
            self.query_one("#summary", Static).update(summary(st))
            self.query_one("#tasks", Pane).show(task_rows(st))
            self.query_one("#services", Pane).show(service_rows(st))
            self.query_one("#events", Pane).show(event_rows(st))
        except NoMatches:
            # A redraw queued just before the app closes finds its widgets gone.
            return

    # -- keys ------------------------------------------------------------------------
    def _selected(self, kind: str) -> str | None:
        """The task or service a key acts on: the one whose log is open, else the
        selected row of its pane."""
        screen = self.screen
        if isinstance(screen, LogScreen):
            return screen.target if screen.kind == kind else None
        return self.query_one(f"#{kind}s", Pane).selected()

    def action_cancel(self) -> None:
        task = self._selected("task")
        if task is not None:
            self._call(f"cancel {task}", "task.cancel", id=task, wait=False)

    def action_restart(self) -> None:
        name = self._selected("service")
        if name is not None:
            self._call(f"restart {name}", "service.restart", name=name)

    def action_pause(self) -> None:
        task = self._selected("task")
        if task is None:
            return
        paused = bool(self.feed.state.tasks.get(task, {}).get("paused"))
        method = "task.resume" if paused else "task.pause"
        self._call(f"{method.split('.')[1]} {task}", method, id=task)

    def _call(self, what: str, method: str, **params: Any) -> None:
        async def run() -> None:
            try:
                result = await self.feed.call(method, **params)
            except (ClientError, TimeoutError) as exc:
                self.notify(f"{what}: {_message(exc)}", severity="error")
                return
            if method in ("task.pause", "task.resume") and isinstance(result, dict):
                self.feed.state.set_paused(params["id"], bool(result.get("paused")))
                self.changed()
            self.notify(what)

        self.run_worker(run(), group="actions", exit_on_error=False)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        self._hide_filter()

    def on_input_changed(self, event: Input.Changed) -> None:
        for pane in self.query(Pane):
            pane.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._hide_filter()

    def _hide_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = bool(box.value)  # a filter in force stays in sight
        self.query_one("#tasks", Pane).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        kind = {"tasks": "task", "services": "service"}.get(event.data_table.id or "")
        key = event.row_key.value
        if kind is not None and key is not None:
            self.push_screen(LogScreen(self.socket_path, kind, str(key)))


def _message(exc: Exception) -> str:
    describe = getattr(exc, "describe", None)
    return str(describe()) if callable(describe) else str(exc)
