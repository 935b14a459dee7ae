"""`aiwg task submit --isolate worktree`, `aiwg task diff|merge|discard ID` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.agents.test_isolate_flow import agent_config, setup_project
from tests.agents.wthelp import branches
from tests.conftest import DaemonFactory
from tests.utils import run_cli


def test_review_an_isolated_task_from_the_cli(project: Path, start_daemon: DaemonFactory) -> None:
    setup_project(project)
    start_daemon(agent_config(project))

    def aiwg(*args: str) -> str:
        res = run_cli(project, *args)
        assert res.returncode == 0, res.stderr
        return res.stdout

    out = aiwg("--json", "task", "submit", "--isolate", "worktree", "--wait", "edit n.txt cli")
    task = json.loads(out)
    assert task["state"] == "completed" and task["isolate"] == "worktree"
    assert "+cli" in aiwg("task", "diff", task["id"])
    shown = aiwg("task", "get", task["id"])
    path, branch = project / ".aiwg" / "worktrees" / task["id"], f"aiwg/{task['id']}"
    wt_line = f"worktree:    {path} ({branch}, 1 commit(s) not merged)"
    assert wt_line in shown.splitlines(), shown

    (project / "a.txt").write_text("dirty\n")
    res = run_cli(project, "task", "merge", task["id"])
    assert res.returncode != 0 and res.stdout == ""
    [line] = res.stderr.strip().splitlines()  # one line, no traceback
    assert "main tree has uncommitted changes (a.txt)" in line, res.stderr
    (project / "a.txt").write_text("one\n")

    branch = f"aiwg/{task['id']}"
    assert aiwg("task", "merge", task["id"]).startswith(f"{branch} merged into main (")
    assert (project / "n.txt").read_text() == "cli\n"
    assert aiwg("task", "discard", task["id"]).startswith("discarded ")
    assert branch not in branches(project)

    plain = json.loads(aiwg("--json", "task", "submit", "--wait", "scribble p.txt x"))
    res = run_cli(project, "task", "discard", "--force", plain["id"])
    assert res.returncode != 0
    [line] = res.stderr.strip().splitlines()
    assert line.endswith(f"task {plain['id']} has no worktree: it is not isolated"), line
    res = run_cli(project, "task", "submit", "--isolate", "worktree", "--base", "nope", "x")
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1
    assert "base: bad base 'nope'" in res.stderr
