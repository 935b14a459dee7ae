"""The data source of `aiwg top`: one connection, one snapshot, then events.

A session subscribes to the events first and then asks for the snapshot (task.list,
service.list, task.stats, daemon.status, monitor.system, events.list), so nothing that
happens in between is missed; every later change comes as an event or as a running
task's output (one `task.logs {follow}` per running task, up to MAX_FOLLOWS). Only the
figures no event carries are asked for again, every REFRESH_S: the machine's load and
memory, the services' CPU and memory, the cap and group usage.

When the daemon goes away the view stays up: the state says so ("daemon not running")
and a new session is tried every RETRY_S, starting again from a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiwgd.cli.top.rpc import Rpc
from aiwgd.cli.top.state import TopState
from aiwgd.client import ClientError, RpcError

EVENT_TYPES = ["task.*", "service.*", "process.*", "daemon.*", "agent.*"]
REFRESH_S = 5.0
RETRY_S = 2.0
MAX_FOLLOWS = 16  # running tasks whose output is followed at once (one request each)
TAIL_BYTES = 2048  # where a follow starts: enough of the log's end for its last line
FOLLOW_CHUNK = 16 * 1024
LIST_LIMIT = 500


class Feed:
    def __init__(self, socket_path: str, on_change: Callable[[], None]) -> None:
        self.socket_path = socket_path
        self.on_change = on_change
        self.state = TopState()
        self.rpc: Rpc | None = None
        self._follows: dict[str, asyncio.Task[None]] = {}
        self._resyncing: asyncio.Task[None] | None = None
        # Task events that arrive while a snapshot's lists are on their way (see
        # _snapshot); None when no snapshot is being taken.
        self._meanwhile: list[dict[str, Any]] | None = None

    async def run(self) -> None:
        """Sessions until cancelled (the app quits); a lost daemon is waited for."""
        while True:
            try:
                await self._session()
            except (ClientError, OSError, TimeoutError) as exc:
                self.state.down_reason = str(exc)
            except Exception as exc:  # an answer of a shape not expected: retry, say it
                self.state.down_reason = f"unexpected {type(exc).__name__}: {exc}"
            finally:
                await self._end_session()
            self.on_change()
            await asyncio.sleep(RETRY_S)

    async def call(self, method: str, **params: Any) -> Any:
        """A call from the view (cancel, restart, pause); ClientError if not connected."""
        if self.rpc is None:
            raise ClientError("daemon not running")
        return await self.rpc.call(method, **params)

    # -- one session -----------------------------------------------------------------
    async def _session(self) -> None:
        rpc = Rpc(self.socket_path, self._notified)
        await rpc.open()
        self.rpc = rpc
        await rpc.call("events.subscribe", types=EVENT_TYPES)
        await self._snapshot(rpc, first=True)
        self.state.connected, self.state.down_reason = True, ""
        await self._refresh(rpc)
        self._follow_running()
        while not rpc.closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rpc.closed.wait(), REFRESH_S)
            if not rpc.closed.is_set():
                await self._refresh(rpc)
        raise ClientError("daemon not running (connection closed)")

    async def _snapshot(self, rpc: Rpc, first: bool) -> None:
        """Tasks and services as they are now; `first`: recent events too (a resync
        after dropped events keeps the events pane and the output lines)."""
        # The lists are answered one by one while events keep coming: a task may end
        # after the running list was made, its task.* event arriving before the list
        # is loaded over it. Those events are applied again once the lists are in.
        meanwhile: list[dict[str, Any]] = []
        self._meanwhile = meanwhile
        try:
            running, queued, recent, services, recent_events = await asyncio.gather(
                rpc.call("task.list", state="running", limit=LIST_LIMIT),
                rpc.call("task.list", state="queued", limit=LIST_LIMIT),
                rpc.call("task.list", limit=10),
                rpc.call("service.list"),
                rpc.call("events.list", type="*.*", limit=20 if first else 1),
            )
        finally:
            self._meanwhile = None
        st = self.state
        if first:
            st.reset()
            for ev in recent_events.get("events", []):
                if str(ev.get("type", "")).split(".")[0] + ".*" in EVENT_TYPES:
                    st.events.appendleft(ev)
        st.tasks.clear()
        st.load_tasks(recent["tasks"] + queued["tasks"] + running["tasks"])
        for event in meanwhile:  # in order: the newest word on each task wins
            st.apply_task_event(event)
        for tid in [t for t in st.output if t not in st.tasks]:
            del st.output[tid]
        st.load_services(services["services"])

    def _resync(self) -> None:
        """Events were dropped (this view read too slowly): what they said is asked for."""
        rpc = self.rpc
        if rpc is None or (self._resyncing is not None and not self._resyncing.done()):
            return

        async def again() -> None:
            with contextlib.suppress(ClientError, TimeoutError):
                await self._snapshot(rpc, first=False)
                self._follow_running()
                self.on_change()

        self._resyncing = asyncio.create_task(again(), name="top-resync")

    async def _refresh(self, rpc: Rpc) -> None:
        """The figures no event carries."""
        stats, system, services, status = await asyncio.gather(
            _ask(rpc, "task.stats"),
            _ask(rpc, "monitor.system"),
            _ask(rpc, "service.list"),
            _ask(rpc, "daemon.status"),
        )
        st = self.state
        st.stats, st.system, st.daemon = stats or {}, system or {}, status or {}
        if services is not None:
            st.load_services(services.get("services", []))
        self.on_change()

    async def _end_session(self) -> None:
        for task in [*self._follows.values(), self._resyncing]:
            if task is not None:
                task.cancel()
        self._follows.clear()
        if self.rpc is not None:
            await self.rpc.close()
            self.rpc = None
        self.state.connected = False

    # -- notifications ---------------------------------------------------------------
    def _notified(self, method: str, params: dict[str, Any]) -> None:
        if method == "event":
            self.state.apply_event(params)
            if self._meanwhile is not None and str(params.get("type", "")).startswith("task."):
                self._meanwhile.append(params)
            if str(params.get("type", "")) == "task.started":
                self._follow_running()
        elif method == "task.output" and isinstance(params.get("id"), str):
            self.state.add_output(params["id"], str(params.get("data", "")))
        elif method == "events.dropped":
            self._resync()
        else:
            return
        self.on_change()

    # -- running tasks' output -------------------------------------------------------
    def _follow_running(self) -> None:
        for task in self.state.visible_tasks():
            if len(self._follows) >= MAX_FOLLOWS:
                return
            tid = task["id"]
            if task.get("state") == "running" and tid not in self._follows:
                self._follows[tid] = asyncio.create_task(self._follow(tid), name=f"top-{tid}")

    async def _follow(self, task_id: str) -> None:
        rpc = self.rpc
        try:
            if rpc is None:
                return
            head = await rpc.call("task.logs", id=task_id, offset=0, limit=1)
            start = max(0, int(head.get("size", 0)) - TAIL_BYTES)
            await rpc.call(
                "task.logs", timeout=None, id=task_id, offset=start, limit=FOLLOW_CHUNK, follow=True
            )
        except ClientError:
            pass  # the task was pruned, or the connection went: the session handles that
        finally:
            if self._follows.get(task_id) is asyncio.current_task():
                del self._follows[task_id]
                if rpc is not None and not rpc.closed.is_set():
                    self._follow_running()  # a slot for a task not yet followed


async def _ask(rpc: Rpc, method: str) -> dict[str, Any] | None:
    """A figure's call; an error answer (a daemon without the method) leaves it blank
    rather than end the session: only a lost connection does that."""
    try:
        result = await rpc.call(method)
    except RpcError:
        return None
    return result if isinstance(result, dict) else None
