"""Reviewing a finished task's worktree: merge into the project's branch (or refuse and
leave the main tree exactly as it was), discard, and retention (prune)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from aiwgd.agents.worktree import Worktree, WorktreeError, Worktrees
from tests.agents.wthelp import (
    branches,
    commit_all,
    main_tree_clean,
    make_repo,
    run,
    sh_git,
    worktree_paths,
)
from tests.utils import wait_for


@pytest.fixture(autouse=True)
def _no_machine_git_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    yield


def task_with_commit(wts: Worktrees, task_id: str, name: str, text: str) -> Worktree:
    wt = run(wts.create(task_id))
    (Path(wt.path) / name).write_text(text)
    commit_all(wt.path, f"work of {task_id}")
    return wt


def no_merge_in_progress(root: Path) -> bool:
    return sh_git(root, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False) == ""


def test_a_clean_merge_lands_on_the_current_branch(project: Path) -> None:
    make_repo(project)
    wts = Worktrees(project)
    wt = task_with_commit(wts, "t1", "feature.txt", "from the agent\n")
    result = run(wts.merge(wt))
    head = sh_git(project, "rev-parse", "HEAD")
    assert result == {"merged": True, "into": "main", "commit": head, "up_to_date": False}
    assert (project / "feature.txt").read_text() == "from the agent\n"
    parents = sh_git(project, "rev-list", "--parents", "-n", "1", "HEAD").split()
    assert parents[2] == sh_git(project, "rev-parse", "aiwg/t1")  # a merge commit
    assert main_tree_clean(project)
    assert run(wts.status(wt))["merged"] is True
    again = run(wts.merge(wt))
    assert again["up_to_date"] is True and again["commit"] == head


def test_a_dirty_main_tree_refuses_the_merge_and_stays_as_it_was(project: Path) -> None:
    make_repo(project)
    wts = Worktrees(project)
    wt = task_with_commit(wts, "t1", "feature.txt", "from the agent\n")
    before = sh_git(project, "rev-parse", "HEAD")
    (project / "a.txt").write_text("my own edit\n")
    with pytest.raises(WorktreeError) as err:
        run(wts.merge(wt))
    assert "uncommitted changes" in str(err.value) and "a.txt" in str(err.value)
    assert "\n" not in str(err.value)
    assert sh_git(project, "rev-parse", "HEAD") == before
    assert (project / "a.txt").read_text() == "my own edit\n"
    assert not (project / "feature.txt").exists()


def test_a_conflict_is_aborted_and_the_main_tree_left_clean(project: Path) -> None:
    make_repo(project)
    wts = Worktrees(project)
    wt = task_with_commit(wts, "t1", "a.txt", "the agent's line\n")
    (project / "a.txt").write_text("the user's line\n")
    before = commit_all(project, "user work")
    with pytest.raises(WorktreeError) as err:
        run(wts.merge(wt))
    message = str(err.value)
    assert "CONFLICT" in message and "a.txt" in message and "aborted" in message
    assert "\n" not in message
    assert sh_git(project, "rev-parse", "HEAD") == before
    assert main_tree_clean(project) and no_merge_in_progress(project)
    assert (project / "a.txt").read_text() == "the user's line\n"
    assert run(wts.status(wt))["merged"] is False


def test_uncommitted_work_in_the_worktree_is_not_merged_silently(project: Path) -> None:
    make_repo(project)
    wts = Worktrees(project)
    wt = task_with_commit(wts, "t1", "feature.txt", "committed\n")
    (Path(wt.path) / "later.txt").write_text("not committed\n")
    with pytest.raises(WorktreeError, match="uncommitted changes"):
        run(wts.merge(wt))
    assert not (project / "feature.txt").exists()


def test_a_hung_merge_times_out_and_is_undone(project: Path) -> None:
    """A pre-merge-commit hook that never returns: git and the hook are killed, and the
    main tree goes back to where it was."""
    make_repo(project)
    wts = Worktrees(project, timeout=1.0)
    wt = task_with_commit(wts, "t1", "feature.txt", "from the agent\n")
    before = sh_git(project, "rev-parse", "HEAD")
    pidfile = project / "hook.pid"
    hook = project / ".git/hooks/pre-merge-commit"
    hook.write_text(f'#!/bin/sh\necho $$ > "{pidfile}"\nexec sleep 120\n')
    hook.chmod(0o755)
    with pytest.raises(WorktreeError, match="timed out"):
        run(wts.merge(wt))
    hook_pid = int(pidfile.read_text())
    wait_for(lambda: not psutil.pid_exists(hook_pid), 5, "the hung hook to be killed")
    assert sh_git(project, "rev-parse", "HEAD") == before
    assert main_tree_clean(project) and no_merge_in_progress(project)
    assert not (project / "feature.txt").exists()


def test_discard_refuses_unmerged_work_unless_forced(project: Path) -> None:
    make_repo(project)
    wts = Worktrees(project)
    wt = task_with_commit(wts, "t1", "feature.txt", "work\n")
    with pytest.raises(WorktreeError, match=r"1 commit.*not merged"):
        run(wts.discard(wt))
    assert Path(wt.path).is_dir() and "aiwg/t1" in branches(project)
    clean = run(wts.create("t2"))
    (Path(clean.path) / "a.txt").write_text("edit\n")
    with pytest.raises(WorktreeError, match="uncommitted changes"):
        run(wts.discard(clean))
    assert (Path(clean.path) / "a.txt").read_text() == "edit\n"
    run(wts.discard(wt, force=True))
    run(wts.discard(clean, force=True))
    assert not Path(wt.path).exists() and not Path(clean.path).exists()
    assert branches(project) == ["main"]
    assert worktree_paths(project) == [str(project)]
    assert sh_git(project, "config", "--get-regexp", "aiwgbase", check=False) == ""
    st = run(wts.status(wt))
    assert (st["exists"], st["head"], st["commits"]) == (False, None, 0)
    with pytest.raises(WorktreeError, match="gone"):
        run(wts.diff(wt))


def test_discard_without_force_takes_merged_or_empty_work(project: Path) -> None:
    make_repo(project)
    wts = Worktrees(project)
    merged = task_with_commit(wts, "t1", "feature.txt", "work\n")
    run(wts.merge(merged))
    empty = run(wts.create("t2"))
    run(wts.discard(merged))
    run(wts.discard(empty))
    assert branches(project) == ["main"]
    assert (project / "feature.txt").read_text() == "work\n"


def test_prune_removes_merged_and_keeps_unmerged_unless_forced(project: Path) -> None:
    make_repo(project)
    wts = Worktrees(project)
    merged = task_with_commit(wts, "merged", "m.txt", "m\n")
    run(wts.merge(merged))
    unmerged = task_with_commit(wts, "unmerged", "u.txt", "u\n")
    dirty = run(wts.create("dirty"))
    (Path(dirty.path) / "d.txt").write_text("d\n")
    gone = run(wts.create("gone"))
    run(wts.discard(gone))
    # A branch only another (non-task) branch holds loses nothing when deleted.
    kept = task_with_commit(wts, "kept", "k.txt", "k\n")
    sh_git(project, "branch", "keep-this", "aiwg/kept")
    everything = [merged, unmerged, dirty, gone, kept]
    assert sorted(run(wts.prune(everything))) == ["kept", "merged"]
    assert sorted(branches(project)) == ["aiwg/dirty", "aiwg/unmerged", "keep-this", "main"]
    assert Path(unmerged.path, "u.txt").exists() and Path(dirty.path, "d.txt").exists()
    assert sorted(run(wts.prune(everything, force=True))) == ["dirty", "unmerged"]
    assert sorted(branches(project)) == ["keep-this", "main"]
    assert os.listdir(project / ".aiwg/worktrees") == []


def test_merge_refuses_a_detached_main_tree(project: Path) -> None:
    make_repo(project)
    wts = Worktrees(project)
    wt = task_with_commit(wts, "t1", "feature.txt", "work\n")
    sh_git(project, "checkout", "-q", "--detach")
    with pytest.raises(WorktreeError, match="detached HEAD"):
        run(wts.merge(wt))
    assert main_tree_clean(project)


def test_an_untracked_file_in_the_way_refuses_the_merge_and_is_kept(project: Path) -> None:
    make_repo(project)
    wts = Worktrees(project)
    wt = task_with_commit(wts, "t1", "feature.txt", "from the agent\n")
    (project / "feature.txt").write_text("the user's own, not committed\n")
    with pytest.raises(WorktreeError) as err:
        run(wts.merge(wt))
    assert "would be overwritten" in str(err.value) and "feature.txt" in str(err.value)
    assert "\n" not in str(err.value)
    assert (project / "feature.txt").read_text() == "the user's own, not committed\n"
    assert main_tree_clean(project) and no_merge_in_progress(project)


def test_the_users_own_merge_in_progress_is_left_alone(project: Path) -> None:
    make_repo(project)
    wts = Worktrees(project)
    wt = task_with_commit(wts, "t1", "feature.txt", "from the agent\n")
    sh_git(project, "checkout", "-q", "-b", "side")
    (project / "a.txt").write_text("side\n")
    commit_all(project, "side")
    sh_git(project, "checkout", "-q", "main")
    (project / "a.txt").write_text("main\n")
    commit_all(project, "main")
    sh_git(project, "merge", "side", check=False)  # the user's, conflicted
    assert not no_merge_in_progress(project)
    with pytest.raises(WorktreeError, match="in progress"):
        run(wts.merge(wt))
    assert not no_merge_in_progress(project)  # still theirs to finish
    assert "<<<<<<<" in (project / "a.txt").read_text()
    assert not (project / "feature.txt").exists()
