"""Pruning finished tasks takes their merged worktrees along, never unmerged work."""

from __future__ import annotations

from pathlib import Path

from tests.agents.test_isolate_flow import agent_config, isolated, setup_project
from tests.agents.wthelp import branches, worktree_paths
from tests.conftest import DaemonFactory
from tests.taskhelp import wait_terminal
from tests.utils import wait_for

SID = "0b9a8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d"


def test_pruned_tasks_lose_merged_worktrees_and_keep_unmerged_ones(
    project: Path, start_daemon: DaemonFactory
) -> None:
    setup_project(project)
    cfg = agent_config(project, output="stream-json")
    d = start_daemon(cfg)
    merged = isolated(d, "edit m.txt merged")
    d.call("task.merge", id=merged["id"])
    kept = isolated(d, "edit k.txt unmerged")
    # Nothing to lose in its worktree, but the newest task resumed it: it stays.
    resumed = isolated(d, f"session {SID}")
    newest = d.call("task.submit", prompt=f"session {SID}", resume=resumed["id"])
    assert wait_terminal(d, newest["id"])["state"] == "completed"
    d.stop()

    # Restarted keeping one finished task: the store prunes the other three at start.
    cfg["tasks"] = {"max_finished": 1}
    d2 = start_daemon(cfg)
    assert [t["id"] for t in d2.call("task.list")["tasks"]] == [newest["id"]]
    wts = project / ".aiwg" / "worktrees"
    line = f"worktree of pruned task {kept['id']} kept"
    wait_for(lambda: line in d2.paths.log_file.read_text(), 10, "the sweep")
    assert not (wts / merged["id"]).exists()
    assert f"aiwg/{merged['id']}" not in branches(project)
    assert str(wts / merged["id"]) not in worktree_paths(project)
    # Unmerged work stays, with its branch, and the daemon says so once.
    assert (wts / kept["id"] / "k.txt").exists() and f"aiwg/{kept['id']}" in branches(project)
    assert d2.call("task.get", id=newest["id"])["worktree"]["exists"] is True
    assert (wts / resumed["id"]).is_dir()
    assert d2.paths.log_file.read_text().count(line) == 1
