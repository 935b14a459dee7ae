"""`aiwg task ...`: submit, run, list, inspect, cancel and follow tasks (`aiwg chat`: chat.py).

With --wait or --follow the exit code tells how the task ended: 0 completed, 1 any
other end (the reason on stderr), so `aiwg task run --wait -- make test` works in
scripts.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from typing import Annotated, Any

import typer

from aiwgd.cli.options import (
    EXIT_ERROR,
    Json,
    Root,
    client,
    emit,
    quick_timeout,
    want_json,
)
from aiwgd.cli.taskqueue import (
    After,
    Delay,
    Executor,
    Group,
    Name,
    RunAt,
    add_queue_commands,
    groups_text,
    queue_lines,
    queue_spec,
)
from aiwgd.cli.taskreview import add_review_commands
from aiwgd.cli.tasksubmit import (
    Agent,
    Base,
    Cwd,
    Env,
    Follow,
    Interrupt,
    IsolateOpt,
    Limit,
    Priority,
    Retries,
    Timeout,
    Wait,
    submit_spec,
)

task_app = typer.Typer(no_args_is_help=True, help="Submit, list, inspect and cancel tasks.")


def _what(task: dict[str, Any]) -> str:
    if task.get("command") is not None:
        return shlex.join(task["command"])
    return str(task.get("prompt") or "").replace("\n", " ")


def _ended_line(task: dict[str, Any]) -> str:
    line = f"task {task['id']} {task['state']}"
    return f"{line}: {task['error']}" if task.get("error") else line


def _follow(root: str | None, task_id: str, as_json: bool) -> dict[str, Any]:
    def show(note: dict[str, Any]) -> None:
        params = note.get("params") or {}
        if as_json:
            typer.echo(json.dumps(params, ensure_ascii=False))
        else:
            sys.stdout.write(params.get("data", ""))
            sys.stdout.flush()

    with client(root, timeout=None) as c:
        c.stream("task.logs", show, id=task_id, follow=True)
        task: dict[str, Any] = c.call("task.get", id=task_id)
    return task


def _submit_and_report(
    root: str | None,
    spec: dict[str, Any],
    wait: bool,
    follow: bool,
    as_json: bool,
) -> None:
    with client(root) as c:
        task = c.call("task.submit", **spec)
    if not (wait or follow):
        emit(task, as_json, f"task {task['id']} {task['state']}")
        return
    if not as_json:
        typer.echo(f"task {task['id']} {task['state']}", err=True)
    if follow:
        final = _follow(root, task["id"], as_json)
    else:
        from aiwgd.cli import taskwait  # state, time and place in the queue while it waits

        final = taskwait.wait(root, task, show=not as_json)
    if as_json:
        typer.echo(json.dumps(final, indent=None if follow else 2, default=str))
    if final["state"] != "completed":
        if not as_json:
            typer.echo(f"aiwg: {_ended_line(final)}", err=True)
        raise typer.Exit(EXIT_ERROR)
    if not as_json:
        typer.echo(_ended_line(final), err=True)


@task_app.command("submit")
def submit(
    prompt: Annotated[str, typer.Argument(help="the prompt for the agent")],
    agent: Agent = None,
    priority: Priority = None,
    timeout: Timeout = None,
    cwd: Cwd = None,
    env: Env = None,
    retries: Retries = 0,
    on_interrupt: Interrupt = None,
    limit: Limit = None,
    isolate: IsolateOpt = None,
    base: Base = None,
    name: Name = None,
    after: After = None,
    run_at: RunAt = None,
    delay: Delay = None,
    group: Group = None,
    executor: Executor = None,
    resume: Annotated[
        str | None,
        typer.Option("--resume", metavar="ID", help="continue task ID's agent session"),
    ] = None,
    wait: Wait = False,
    follow: Follow = False,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Queue an agent prompt."""
    spec = submit_spec(
        agent, priority, timeout, cwd, env, retries, on_interrupt, limit, isolate, base
    )
    spec["prompt"] = prompt
    spec.update(queue_spec(name, after, run_at, delay, group, executor))
    if resume is not None:
        spec["resume"] = resume
    _submit_and_report(root, spec, wait, follow, want_json(json_out))


@task_app.command("run", context_settings={"allow_interspersed_args": False})
def run(
    command: Annotated[list[str], typer.Argument(help="-- CMD ARGS... (no shell)")],
    priority: Priority = None,
    timeout: Timeout = None,
    cwd: Cwd = None,
    env: Env = None,
    retries: Retries = 0,
    on_interrupt: Interrupt = None,
    limit: Limit = None,
    isolate: IsolateOpt = None,
    base: Base = None,
    name: Name = None,
    after: After = None,
    run_at: RunAt = None,
    delay: Delay = None,
    group: Group = None,
    executor: Executor = None,
    wait: Wait = False,
    follow: Follow = False,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Queue a command (an argv list, never run through a shell): aiwg task run -- make test"""
    spec = submit_spec(
        None, priority, timeout, cwd, env, retries, on_interrupt, limit, isolate, base
    )
    spec["command"] = command
    spec.update(queue_spec(name, after, run_at, delay, group, executor))
    _submit_and_report(root, spec, wait, follow, want_json(json_out))


@task_app.command("list")
def list_(
    state: Annotated[str | None, typer.Option("--state", help="only this state")] = None,
    agent: Agent = None,
    source: Annotated[str | None, typer.Option("--source", help="cli|rpc|rule|chat|...")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="rows")] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Tasks, newest first: id, state, priority, age, duration, name, command or prompt."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    for key, value in (("state", state), ("agent", agent), ("source", source)):
        if value is not None:
            params[key] = value
    with client(root) as c:
        result = c.call("task.list", **params)
    if want_json(json_out):
        emit(result, True)
        return
    if not result["tasks"]:
        typer.echo("no tasks")
        return
    from aiwgd.cli import render, tasklist  # the table: only this command shows it

    typer.echo(tasklist.table(result["tasks"], render.width()))
    shown = offset + len(result["tasks"])
    if shown < result["total"] or offset:
        typer.echo(f"({offset + 1}-{shown} of {result['total']})")


def _worktree_state(wt: dict[str, Any]) -> str:
    if wt.get("error"):
        return f"{wt['branch']}: {wt['error']}"
    if not wt.get("exists") and wt.get("head") is None:
        return f"{wt['branch']}, removed"
    work = "merged" if wt.get("merged") else f"{wt.get('commits', 0)} commit(s) not merged"
    return f"{wt['branch']}, {work}" + (", uncommitted changes" if wt.get("dirty") else "")


def _human_task(t: dict[str, Any]) -> str:
    from aiwgd.cli import render, tasklist

    keys = (
        "id",
        "state",
        "source",
        "agent",
        "priority",
        "cwd",
        "attempt",
        "max_retries",
        "timeout_s",
        "pid",
        "exit_code",
        "signal",
        "error",
        "log_path",
        "resume",
    )
    t = {**t, "pid": (t.get("runner") or {}).get("pid")}  # where a local attempt ran
    lines = [f"{k + ':':<12} {t[k]}" for k in keys if t.get(k) is not None]
    wt = t.get("worktree")
    if wt:
        lines.append(f"{'worktree:':<12} {wt['path']} ({_worktree_state(wt)})")
    lines.insert(2, f"{'what:':<12} {_what(t)}")
    now = time.time()
    lines.append(f"{'created:':<12} {render.duration(now - t['created_at'])} ago")
    if t.get("started_at"):
        dur = (t.get("finished_at") or now) - t["started_at"]
        lines.append(f"{'duration:':<12} {render.duration(dur)}")
    lines[:0] = tasklist.agent_head(t)  # an agent's answer first
    lines += tasklist.agent_lines(t)
    lines += queue_lines(t)  # name, after, group, start time, paused, rerun_of
    tail = t.get("output_tail") or ""
    if tail:
        lines += ["output (tail):", tail.rstrip("\n")]
    return "\n".join(lines)


@task_app.command("get")
def get(
    task_id: Annotated[str, typer.Argument(metavar="ID")], root: Root = None, json_out: Json = False
) -> None:
    """One task in full, with its output tail."""
    with client(root) as c:
        task = c.call("task.get", id=task_id)
    emit(task, want_json(json_out), _human_task(task))


@task_app.command("cancel")
def cancel(
    task_id: Annotated[str, typer.Argument(metavar="ID")], root: Root = None, json_out: Json = False
) -> None:
    """Cancel a queued task, or stop a running one (SIGTERM, grace, SIGKILL)."""
    with client(root, timeout=None) as c:
        task = c.call("task.cancel", id=task_id)
    emit(task, want_json(json_out), f"task {task['id']} {task['state']}")


@task_app.command("wait")
def wait_cmd(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="seconds")] = 3600,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Wait until a task ends (exit 0 if completed, 1 otherwise or at the timeout)."""
    # The daemon answers at the latest after `timeout`; a quick call's time on top.
    with client(root, timeout=timeout + quick_timeout()) as c:
        task = c.call("task.wait", id=task_id, timeout_s=timeout)
    emit(task, want_json(json_out), _ended_line(task))
    if task["state"] != "completed":
        raise typer.Exit(EXIT_ERROR)


@task_app.command("logs")
def logs(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    follow: Follow = False,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Print a task's output (its full log); -f keeps printing until the task ends."""
    as_json = want_json(json_out)
    if follow:
        _follow(root, task_id, as_json)
        return
    offset = 0
    with client(root) as c:
        while True:
            chunk = c.call("task.logs", id=task_id, offset=offset, limit=256 * 1024)
            if as_json:
                typer.echo(json.dumps(chunk, ensure_ascii=False))
            else:
                sys.stdout.write(chunk["data"])
            if chunk["next_offset"] == offset:
                break
            offset = chunk["next_offset"]
    sys.stdout.flush()


add_review_commands(task_app)  # task diff | merge | discard, for isolated tasks
add_queue_commands(task_app)  # task pause | resume | rerun


@task_app.command("stats")
def stats(root: Root = None, json_out: Json = False) -> None:
    """Counts per state, running, queued, the cap and totals since start."""
    with client(root) as c:
        s = c.call("task.stats")
    counts = ", ".join(f"{k} {v}" for k, v in s["counts"].items() if v)
    human = (
        f"{s['running']} running, {s['queued']} queued (cap {s['cap']}); "
        f"{s['stored']} stored" + (f": {counts}" if counts else "")
    )
    from aiwgd.cli import tasklist  # agent costs per agent and per day

    human = "\n".join(filter(None, [human, groups_text(s), tasklist.costs_text(s)]))
    emit(s, want_json(json_out), human)


def register(app: typer.Typer) -> None:
    app.add_typer(task_app, name="task")
