"""RPC methods for tasks: task.submit|get|list|cancel|stats|logs|wait, chat.send, and
for isolated tasks task.diff|merge|discard (aiwgd.agents.isolation).

Thin: each method validates its params (the Api registry does that from the
dataclasses below) and calls the supervisor or the store. `task.logs` with
`follow: true` streams the log as `task.output` notifications on the caller's
connection ({id, offset, data}) until the task ends, then answers like without it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from aiwgd import errors
from aiwgd.config.schema import spec
from aiwgd.rpc.registry import Api, NoParams
from aiwgd.tasks.model import SOURCES, Task, TaskState
from aiwgd.tasks.results import PauseResult, TaskList, TaskLogsResult, TaskStats, TaskView
from aiwgd.tasks.spec import ChatParams, SubmitParams
from aiwgd.tasks.supervisor import Supervisor

STATES = tuple(str(s) for s in TaskState)
LOG_CHUNK = 64 * 1024
MAX_LOG_CHUNK = 512 * 1024  # one reply stays well under any client's line limit
FOLLOW_POLL_S = 1.0  # a safety net only: output and state changes wake followers


@dataclass
class IdParams:
    id: str = spec(min_len=1, max_len=64)


@dataclass
class ListParams:
    state: str | None = spec(None, choices=STATES)
    agent: str | None = None
    source: str | None = spec(None, choices=SOURCES)
    limit: int = spec(50, ge=1, le=10_000)
    offset: int = spec(0, ge=0)


@dataclass
class CancelParams:
    id: str = spec(min_len=1, max_len=64)
    wait: bool = spec(True, doc="answer once a running task is really gone")


@dataclass
class WaitParams:
    id: str = spec(min_len=1, max_len=64)
    timeout_s: float = spec(60, ge=0, le=86_400)


@dataclass
class PauseParams:
    id: str | None = spec(None, min_len=1, max_len=64, doc="a running task")
    group: str | None = spec(None, min_len=1, max_len=200, doc="a group of tasks.groups")


def _one_of(p: PauseParams) -> None:
    if (p.id is None) == (p.group is None):
        raise errors.InvalidParams(
            'Invalid params: id, group: give exactly one of "id" (a task) or "group"',
            {"errors": ["id, group: give exactly one"]},
        )


@dataclass
class DiscardParams:
    id: str = spec(min_len=1, max_len=64)
    force: bool = spec(False, doc="also drop uncommitted changes and unmerged commits")


class TaskDiff(TypedDict):
    id: str
    branch: str
    base: Annotated[str, "the commit the worktree was created from"]
    diff: Annotated[str, "git diff of the worktree (commits and uncommitted edits) vs base"]


class TaskMerge(TypedDict):
    id: str
    branch: str
    merged: bool
    into: Annotated[str, "the project's current branch"]
    commit: Annotated[str, "HEAD after the merge"]
    up_to_date: Annotated[bool, "nothing to merge: HEAD already had the branch's commits"]


class TaskDiscard(TypedDict):
    id: str
    branch: str
    path: str
    discarded: bool


@dataclass
class ChatSendParams(ChatParams):
    resume: str | None = spec(
        None,
        min_len=1,
        max_len=64,
        doc="id of the previous chat task: continue its agent session (aiwg chat's chain)",
    )


@dataclass
class LogsParams:
    id: str = spec(min_len=1, max_len=64)
    offset: int = spec(0, ge=0, doc="byte offset into the task's log file")
    limit: int = spec(LOG_CHUNK, ge=1, le=MAX_LOG_CHUNK, doc="bytes per reply / notification")
    follow: bool = spec(False, doc="stream task.output notifications until the task ends")


def _char_len(lead: int) -> int:
    """Bytes in the UTF-8 sequence this byte starts (1 for ASCII or a stray byte)."""
    if lead >> 5 == 0b110:
        return 2
    if lead >> 4 == 0b1110:
        return 3
    return 4 if lead >> 3 == 0b11110 else 1


def _complete(data: bytes, limit: int) -> int:
    """How much of `data` (read `limit` + 3 bytes) to return: `limit` bytes, moved to a
    character boundary, by up to 3 bytes either way."""
    if len(data) <= limit:
        end = len(data)
    else:
        end = limit
        if data[end] & 0xC0 != 0x80:
            return end  # the next byte starts a character: no split here
    start = end
    while start > 0 and end - start < 3 and data[start - 1] & 0xC0 == 0x80:
        start -= 1  # back to the lead byte of the character the cut falls in
    lead = start - 1 if start > 0 and data[start - 1] & 0xC0 == 0xC0 else None
    if lead is None:
        return end
    need = lead + _char_len(data[lead])
    if need <= len(data):
        return max(end, need)  # complete: take the whole character
    return lead  # still being written: leave it for the next read


def read_log(
    path: str | os.PathLike[str], offset: int, limit: int, final: bool
) -> tuple[str, int, int]:
    """(text, next_offset, file size) for `limit` bytes from `offset`.

    A character split by the limit is completed (up to 3 more bytes); one still being
    written is left for the next read, unless `final` (the task has ended: whatever is
    there is all there will be, and bad bytes become U+FFFD).
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(offset)
            data = fh.read(limit + 3)
    except FileNotFoundError:
        return "", offset, 0
    if final and offset + len(data) >= size and len(data) <= limit:
        take = len(data)
    else:
        take = _complete(data, limit)
    return data[:take].decode("utf-8", errors="replace"), offset + take, size


def register(api: Api, sup: Supervisor) -> None:
    """Add the task and chat methods to the method table."""
    app_errors = (errors.NotFound, errors.Forbidden, errors.ShuttingDown, errors.Unavailable)

    @api.method(
        "task.submit",
        "Queue an agent prompt or a command; returns the task.",
        SubmitParams,
        result=Task,
        raises=app_errors,
    )
    async def submit(ctx: Any, p: SubmitParams) -> dict[str, Any]:
        return (await sup.submit_params(p, "rpc")).to_dict()

    @api.method(
        "chat.send",
        "Send a message to the agent (a chat task, priority normal).",
        ChatSendParams,
        result=Task,
        raises=app_errors,
    )
    async def chat(ctx: Any, p: ChatSendParams) -> dict[str, Any]:
        params = SubmitParams(prompt=p.message, agent=p.agent, priority="normal", resume=p.resume)
        return (await sup.submit_params(params, "chat")).to_dict()

    @api.method(
        "task.get",
        "One task with its output tail (and its resource usage while it runs).",
        IdParams,
        result=TaskView,
        raises=(errors.NotFound,),
    )
    async def get(ctx: Any, p: IdParams) -> dict[str, Any]:
        return {**await sup.isolation.view(sup.get(p.id)), "paused": sup.pauses.paused(p.id)}

    found = (errors.NotFound, errors.Conflict)

    @api.method(
        "task.diff",
        "An isolated task's change: its worktree against the commit it started from.",
        IdParams,
        result=TaskDiff,
        raises=found,
    )
    async def diff(ctx: Any, p: IdParams) -> dict[str, Any]:
        return await sup.isolation.diff(p.id)

    @api.method(
        "task.merge",
        "Merge an isolated task's branch into the project's current branch; refused "
        "(Conflict, with the reason) on a dirty main tree or a conflict, nothing half-merged.",
        IdParams,
        result=TaskMerge,
        raises=found,
    )
    async def merge(ctx: Any, p: IdParams) -> dict[str, Any]:
        return await sup.isolation.merge(p.id)

    @api.method(
        "task.discard",
        "Remove an isolated task's worktree and branch; unmerged work needs force.",
        DiscardParams,
        result=TaskDiscard,
        raises=found,
    )
    async def discard(ctx: Any, p: DiscardParams) -> dict[str, Any]:
        return await sup.isolation.discard(p.id, p.force)

    @api.method(
        "task.list",
        "Task summaries (newest first) and the total matching.",
        ListParams,
        result=TaskList,
    )
    async def list_(ctx: Any, p: ListParams) -> dict[str, Any]:
        page, total = sup.list(
            state=p.state, agent=p.agent, source=p.source, limit=p.limit, offset=p.offset
        )
        return {
            "tasks": [{**t.summary(), "paused": sup.pauses.paused(t.id)} for t in page],
            "total": total,
            "limit": p.limit,
            "offset": p.offset,
        }

    @api.method(
        "task.cancel",
        "Cancel a queued task, or stop a running one (stop ladder).",
        CancelParams,
        result=Task,
        raises=(errors.NotFound, errors.Conflict),
    )
    async def cancel(ctx: Any, p: CancelParams) -> dict[str, Any]:
        return await sup.cancel(p.id, wait=p.wait)

    @api.method(
        "task.pause",
        "Pause a running task (SIGSTOP to its process group; its timeout clock stops "
        "too), or a group: it starts nothing new and its running tasks are paused.",
        PauseParams,
        result=PauseResult,
        raises=(errors.NotFound, errors.Conflict),
    )
    async def pause(ctx: Any, p: PauseParams) -> dict[str, Any]:
        _one_of(p)
        return sup.pausing.pause(p.id, p.group)

    @api.method(
        "task.resume",
        "Continue a paused task (SIGCONT), or a paused group and its tasks.",
        PauseParams,
        result=PauseResult,
        raises=(errors.NotFound, errors.Conflict),
    )
    async def resume(ctx: Any, p: PauseParams) -> dict[str, Any]:
        _one_of(p)
        return sup.pausing.resume(p.id, p.group)

    @api.method(
        "task.rerun",
        "A new task with the same spec as this one (rerun_of links it); returns it.",
        IdParams,
        result=Task,
        raises=(*app_errors, errors.Conflict),
    )
    async def rerun(ctx: Any, p: IdParams) -> dict[str, Any]:
        return (await sup.rerun(p.id)).to_dict()

    @api.method(
        "task.stats",
        "Counts per state, running, queued, cap and totals.",
        NoParams,
        result=TaskStats,
    )
    async def stats(ctx: Any, p: NoParams) -> dict[str, Any]:
        return sup.stats()

    @api.method(
        "task.wait",
        "Answer when the task is terminal, or at timeout_s.",
        WaitParams,
        result=Task,
        raises=(errors.NotFound,),
    )
    async def wait(ctx: Any, p: WaitParams) -> dict[str, Any]:
        return await sup.wait(p.id, p.timeout_s)

    @api.method(
        "task.logs",
        "The task's output from a byte offset; follow streams it.",
        LogsParams,
        result=TaskLogsResult,
        raises=(errors.NotFound,),
    )
    async def logs(ctx: Any, p: LogsParams) -> dict[str, Any]:
        task, path = sup.log_file(p.id)
        if not p.follow:
            text, nxt, size = await asyncio.to_thread(
                read_log, path, p.offset, p.limit, task.terminal
            )
            return {
                "id": p.id,
                "state": str(task.state),
                "offset": p.offset,
                "data": text,
                "next_offset": nxt,
                "size": size,
                "eof": task.terminal and nxt >= size,
            }
        pos = p.offset
        while True:
            found = sup.find(p.id)
            done = found is None or found.terminal or ctx.conn.closed
            while not ctx.conn.closed:
                text, nxt, _ = await asyncio.to_thread(read_log, path, pos, p.limit, done)
                if nxt == pos:
                    break
                await ctx.conn.notify("task.output", {"id": p.id, "offset": pos, "data": text})
                pos = nxt
            if done:
                break
            await sup.changed(p.id, FOLLOW_POLL_S)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            size = 0
        state = str(found.state) if found is not None else "pruned"
        return {
            "id": p.id,
            "state": state,
            "next_offset": pos,
            "size": size,
            "eof": True,
            "exit_code": found.exit_code if found else None,
        }
