"""`aiwg task diff|merge|discard ID`: review the worktree of an isolated task.

Added to cli/tasks.py's `task` group by `add_review_commands`; the daemon does the git
work (task.diff, task.merge, task.discard) and refuses with one line saying why.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from aiwgd.cli.options import Json, Root, client, emit, want_json

TaskId = Annotated[str, typer.Argument(metavar="ID")]


def add_review_commands(app: typer.Typer) -> None:
    app.command("diff")(diff)
    app.command("merge")(merge)
    app.command("discard")(discard)


def diff(task_id: TaskId, root: Root = None, json_out: Json = False) -> None:
    """An isolated task's change: its worktree against the commit it started from."""
    with client(root) as c:
        got = c.call("task.diff", id=task_id)
    if want_json(json_out):
        emit(got, True)
    else:
        sys.stdout.write(got["diff"])


def merge(task_id: TaskId, root: Root = None, json_out: Json = False) -> None:
    """Merge an isolated task's branch into the project's current branch."""
    with client(root, timeout=None) as c:
        got = c.call("task.merge", id=task_id)
    done = "already merged" if got["up_to_date"] else f"merged into {got['into']}"
    emit(got, want_json(json_out), f"{got['branch']} {done} ({got['commit'][:12]})")


def discard(
    task_id: TaskId,
    force: Annotated[bool, typer.Option("--force", help="drop unmerged work too")] = False,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Remove an isolated task's worktree and branch (unmerged work needs --force)."""
    with client(root, timeout=None) as c:
        got = c.call("task.discard", id=task_id, force=force)
    emit(got, want_json(json_out), f"discarded {got['path']} and {got['branch']}")
