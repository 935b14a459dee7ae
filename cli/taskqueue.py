"""Queue control from the CLI: `--name/--after/--run-at/--delay/--group` for
`aiwg task submit|run`, and `aiwg task pause|resume ID|--group G`, `aiwg task rerun ID`.

Added to cli/tasks.py's `task` group by `add_queue_commands`; the daemon validates every
value and refuses with one line naming the key (after[0], run_at, group).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from aiwgd.cli.options import Json, Root, UsageError, client, emit, want_json

Name = Annotated[str | None, typer.Option("--name", help="a name shown by aiwg task list")]
After = Annotated[
    list[str] | None,
    typer.Option("--after", metavar="ID", help="start once task ID completed (repeatable)"),
]
RunAt = Annotated[
    str | None,
    typer.Option("--run-at", metavar="TIME", help="ISO 8601 start time (no zone: local)"),
]
Delay = Annotated[float | None, typer.Option("--delay", metavar="S", help="start in S seconds")]
Group = Annotated[str | None, typer.Option("--group", "-g", help="a group of tasks.groups")]
Executor = Annotated[
    str | None,
    typer.Option("--executor", "-x", metavar="NAME", help='"local" or a name of config executors'),
]
# The states a task ends in (dependency_failed: an `after` task did not complete).
ENDS = ("completed", "failed", "timed_out", "cancelled", "dependency_failed")
TaskId = Annotated[str | None, typer.Argument(metavar="ID", help="a running task")]


def queue_spec(
    name: str | None,
    after: list[str] | None,
    run_at: str | None,
    delay: float | None,
    group: str | None,
    executor: str | None = None,
) -> dict[str, Any]:
    """The task.submit params these options give (none when not used)."""
    spec: dict[str, Any] = {}
    given = (("name", name), ("run_at", run_at), ("delay_s", delay), ("group", group))
    for key, value in (*given, ("executor", executor)):
        if value is not None:
            spec[key] = value
    if after:
        spec["after"] = after
    return spec


def add_queue_commands(app: typer.Typer) -> None:
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.command("rerun")(rerun)


def _target(task_id: str | None, group: str | None) -> dict[str, str]:
    if (task_id is None) == (group is None):
        raise UsageError("give a task ID or --group G (one of them)")
    return {"group": group} if group is not None else {"id": task_id or ""}


def _line(got: dict[str, Any], verb: str) -> str:
    what = f"group {got['group']}" if "group" in got else f"task {got['id']}"
    tasks = got.get("tasks") or []
    if "group" in got:
        return f"{what} {verb}" + (f" ({len(tasks)} running task(s))" if tasks else "")
    return f"{what} {verb}"


def pause(
    task_id: TaskId = None, group: Group = None, root: Root = None, json_out: Json = False
) -> None:
    """Pause a running task (SIGSTOP; its timeout clock stops too) or a whole group."""
    with client(root) as c:
        got = c.call("task.pause", **_target(task_id, group))
    emit(got, want_json(json_out), _line(got, "paused"))


def resume(
    task_id: TaskId = None, group: Group = None, root: Root = None, json_out: Json = False
) -> None:
    """Continue a paused task (SIGCONT) or a paused group."""
    with client(root) as c:
        got = c.call("task.resume", **_target(task_id, group))
    emit(got, want_json(json_out), _line(got, "resumed"))


def rerun(
    task_id: Annotated[str, typer.Argument(metavar="ID")], root: Root = None, json_out: Json = False
) -> None:
    """Submit a new task with the same spec as task ID."""
    with client(root) as c:
        got = c.call("task.rerun", id=task_id)
    emit(got, want_json(json_out), f"task {got['id']} {got['state']} (rerun of {task_id})")


def groups_text(stats: dict[str, Any]) -> str:
    """One line per group for `aiwg task stats`."""
    lines = []
    for name, g in sorted((stats.get("groups") or {}).items()):
        paused = ", paused" if g["paused"] else ""
        lines.append(
            f"group {name}: {g['running']} running, {g['queued']} queued "
            f"(max_parallel {g['max_parallel']}){paused}"
        )
    return "\n".join(lines)


def queue_lines(t: dict[str, Any]) -> list[str]:
    """`aiwg task get`'s lines for the queue fields a task has."""
    lines = []
    if t.get("name"):
        lines.append(f"{'name:':<12} {t['name']}")
    if t.get("after"):
        lines.append(f"{'after:':<12} {', '.join(t['after'])}")
    if t.get("group"):
        lines.append(f"{'group:':<12} {t['group']}")
    if t.get("executor"):
        runner = t.get("runner") or {}
        where = (
            f" (worker {runner['worker']} on {runner.get('host', '?')})"
            if runner.get("worker")
            else ""
        )
        lines.append(f"{'executor:':<12} {t['executor']}{where}")
    if t.get("start_at") and t.get("state") == "queued":
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t["start_at"]))
        lines.append(f"{'starts at:':<12} {when}")
    if t.get("paused"):
        lines.append(f"{'paused:':<12} yes (aiwg task resume {t['id']})")
    if t.get("rerun_of"):
        lines.append(f"{'rerun of:':<12} {t['rerun_of']}")
    return lines
