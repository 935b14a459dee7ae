"""The log screen of `aiwg top`: a task's or a service's output, following.

It opens a connection of its own, so leaving the screen (Escape) ends the follow by
closing it: the daemon ends a `task.logs {follow}` and a service follow when their
connection goes.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from aiwgd.cli.top.rpc import Rpc
from aiwgd.client import ClientError

MAX_LINES = 5000
TASK_TAIL_BYTES = 64 * 1024  # the end of a long task log is what one opens it for
SERVICE_LINES = 200


class LogScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "back")]

    def __init__(self, socket_path: str, kind: str, name: str) -> None:
        super().__init__()
        self.socket_path, self.kind, self.target = socket_path, kind, name
        self.rpc: Rpc | None = None
        self.leaving = False
        self._partial = ""

    def compose(self) -> ComposeResult:
        yield Static(f"{self.kind} {self.target}: following (Escape: back)", id="logtitle")
        yield Log(max_lines=MAX_LINES, id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Log).focus()
        self.run_worker(self._follow(), exclusive=True)

    async def _follow(self) -> None:
        log = self.query_one(Log)
        self.rpc = Rpc(self.socket_path, self._notified)
        try:
            await self.rpc.open()
            if self.kind == "task":
                end = await self._follow_task(self.rpc)
            else:
                end = await self._follow_service(self.rpc)
        except ClientError as exc:
            if self.leaving:
                return
            end = f"-- {exc} --"
            self.app.notify(str(exc), severity="error")
        self._flush()
        log.write_line(end)

    async def _follow_task(self, rpc: Rpc) -> str:
        head = await rpc.call("task.logs", id=self.target, offset=0, limit=1)
        start = max(0, int(head.get("size", 0)) - TASK_TAIL_BYTES)
        end = await rpc.call("task.logs", timeout=None, id=self.target, offset=start, follow=True)
        return f"-- task {end.get('state')}, exit code {end.get('exit_code')} --"

    async def _follow_service(self, rpc: Rpc) -> str:
        first = await rpc.call("service.logs", name=self.target, lines=SERVICE_LINES, follow=True)
        self._lines(first.get("lines", []))
        await rpc.closed.wait()
        return "-- the daemon closed the connection --"

    def _notified(self, method: str, params: dict[str, Any]) -> None:
        if method == "task.output":
            text = self._partial + str(params.get("data", ""))
            *done, self._partial = text.split("\n")
            self._lines(done)
        elif method == "service.output":
            self._lines(params.get("lines", []))
        elif method == "service.output_ended":
            self._lines(["-- the service's log ended --"])

    def _lines(self, lines: list[Any]) -> None:
        log = self.query_one(Log)
        for line in lines:
            log.write_line(str(line).rstrip("\r\n"))

    def _flush(self) -> None:
        if self._partial:
            self._lines([self._partial])
            self._partial = ""

    async def action_back(self) -> None:
        self.leaving = True
        self.workers.cancel_node(self)
        if self.rpc is not None:
            with contextlib.suppress(ClientError, OSError):
                await self.rpc.close()
        self.app.pop_screen()
