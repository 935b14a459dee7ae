"""Worktrees for isolated tasks: create, reuse, status, diff, and rollback of a failed
creation. Real repositories and real `git worktree`s in temporary project dirs."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiwgd.agents.worktree import NotARepository, Worktree, WorktreeError, Worktrees
from tests.agents.wthelp import (
    GIT_ENV,
    branches,
    commit_all,
    make_repo,
    run,
    sh_git,
    worktree_paths,
)
from tests.tmpfs import fill, tmpfs
from tests.utils import wait_for

# A smudge filter that hangs while `hang` exists: git is inside its checkout, the new
# worktree registered and locked "initializing", when the test kills it.
SMUDGE = """\
import pathlib, sys, time
here = pathlib.Path(__file__).parent
sys.stdout.write(sys.stdin.read())
sys.stdout.flush()
if (here / "hang").exists():
    (here / "smudging").touch()
    time.sleep(60)
"""


@pytest.fixture(autouse=True)
def _no_machine_git_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    yield


def test_create_from_head_gives_a_worktree_on_a_new_branch(project: Path) -> None:
    head = make_repo(project)
    wt = run(Worktrees(project).create("t1"))
    assert wt == Worktree("t1", str(project / ".aiwg/worktrees/t1"), "aiwg/t1", head)
    assert (Path(wt.path) / "a.txt").read_text() == "one\n"
    assert sh_git(wt.path, "symbolic-ref", "--short", "HEAD") == "aiwg/t1"
    assert wt.path in worktree_paths(project)
    assert wt.to_dict() == {"task_id": "t1", "path": wt.path, "branch": "aiwg/t1", "base": head}
    status = run(Worktrees(project).status(wt))
    assert status["exists"] is True
    assert (status["commits"], status["dirty"]) == (0, False)
    assert (status["path"], status["branch"], status["base"]) == (wt.path, "aiwg/t1", head)
    # The worktrees directory is the daemon's state: owner-only.
    assert (project / ".aiwg/worktrees").stat().st_mode & 0o777 == 0o700


def test_create_from_a_tag_and_from_a_branch_with_a_custom_prefix(project: Path) -> None:
    first = make_repo(project)
    sh_git(project, "tag", "v1")
    sh_git(project, "branch", "feature")
    (project / "a.txt").write_text("two\n")
    second = commit_all(project, "second")
    wts = Worktrees(project, branch_prefix="agents/")
    tagged = run(wts.create("t1", base="v1"))
    assert (tagged.base, tagged.branch) == (first, "agents/t1")
    assert (Path(tagged.path) / "a.txt").read_text() == "one\n"
    from_branch = run(wts.create("t2", base="feature"))
    assert from_branch.base == first
    assert run(wts.create("t3")).base == second
    assert {"agents/t1", "agents/t2", "agents/t3"} <= set(branches(project))


def test_status_counts_commits_and_sees_uncommitted_edits(project: Path) -> None:
    make_repo(project)
    wts = Worktrees(project)
    wt = run(wts.create("t1"))
    (Path(wt.path) / "a.txt").write_text("edited\n")
    st = run(wts.status(wt))
    assert (st["commits"], st["dirty"]) == (0, True)
    commit_all(wt.path, "agent work")
    st = run(wts.status(wt))
    assert (st["commits"], st["dirty"], st["merged"]) == (1, False, False)
    (Path(wt.path) / "new.txt").write_text("untracked\n")
    st = run(wts.status(wt))
    assert (st["commits"], st["dirty"]) == (1, True)


def test_diff_shows_commits_uncommitted_edits_and_new_files(project: Path) -> None:
    make_repo(project, {"a.txt": "one\n", "b.txt": "bee\n"})
    wts = Worktrees(project)
    wt = run(wts.create("t1"))
    work = Path(wt.path)
    (work / "a.txt").write_text("committed change\n")
    commit_all(work, "agent work")
    (work / "b.txt").write_text("uncommitted change\n")
    (work / "new.txt").write_text("brand new\n")
    diff = run(wts.diff(wt))
    assert "-one\n+committed change\n" in diff
    assert "-bee\n+uncommitted change\n" in diff
    assert "+++ b/new.txt" in diff and "+brand new" in diff
    # Looking changed nothing in the task's worktree: the new file is still untracked.
    assert "?? new.txt" in sh_git(work, "status", "--porcelain").splitlines()


def test_create_again_reuses_the_worktree_even_after_a_restart(project: Path) -> None:
    head = make_repo(project)
    wt = run(Worktrees(project).create("t1"))
    (Path(wt.path) / "a.txt").write_text("work\n")
    commit_all(wt.path, "agent work")
    (Path(wt.path) / "scratch").write_text("uncommitted\n")
    # A new instance is what a restarted daemon has; the base stays the creation commit.
    wts = Worktrees(project)
    again = run(wts.create("t1"))
    assert again == wt and again.base == head
    assert (Path(wt.path) / "scratch").read_text() == "uncommitted\n"
    assert run(wts.find("t1")) == wt
    assert run(wts.find("t2")) is None
    # Killed before the base was recorded: the branch's reflog still knows it.
    sh_git(project, "config", "--unset", "branch.aiwg/t1.aiwgbase")
    assert run(wts.create("t1")).base == head
    assert branches(project).count("aiwg/t1") == 1


def test_a_branch_that_already_exists_is_refused_and_kept(project: Path) -> None:
    make_repo(project)
    sh_git(project, "branch", "aiwg/t1")
    before = sh_git(project, "rev-parse", "aiwg/t1")
    with pytest.raises(WorktreeError) as err:
        run(Worktrees(project).create("t1"))
    assert "already exists" in str(err.value) and "\n" not in str(err.value)
    assert not (project / ".aiwg/worktrees/t1").exists()
    assert worktree_paths(project) == [str(project)]
    assert sh_git(project, "rev-parse", "aiwg/t1") == before  # someone else's: untouched


def test_a_bad_base_leaves_nothing_behind(project: Path) -> None:
    make_repo(project)
    wts = Worktrees(project)
    with pytest.raises(WorktreeError) as err:
        run(wts.create("t1", base="no-such-ref"))
    assert "no-such-ref" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(WorktreeError, match="bad base"):
        run(wts.create("t1", base="--orphan"))
    assert branches(project) == ["main"]
    assert worktree_paths(project) == [str(project)]
    assert not (project / ".aiwg/worktrees/t1").exists()


def test_a_full_disk_rolls_the_creation_back(project: Path) -> None:
    """git creates the branch, then fails writing the checkout: the branch must go too."""
    make_repo(project, {f"f{i}.txt": "x" * 4096 + f"{i}\n" for i in range(64)})
    where = project / ".aiwg/worktrees"
    where.mkdir(parents=True)
    if os.geteuid() != 0:  # root writes through permissions; it gets a real full disk
        where.chmod(0o500)
        try:
            with pytest.raises(WorktreeError) as err:
                run(Worktrees(project).create("t1"))
        finally:
            where.chmod(0o700)
    else:
        with tmpfs(where, size="1m"):
            fill(where)
            with pytest.raises(WorktreeError) as err:
                run(Worktrees(project).create("t1"))
            assert not (where / "t1").exists()
    assert "t1" in str(err.value) and "\n" not in str(err.value)
    assert branches(project) == ["main"]
    assert worktree_paths(project) == [str(project)]
    # Space is back: the same task is created normally.
    assert Path(run(Worktrees(project).create("t1")).path, "f1.txt").exists()


def test_not_a_repository_is_its_own_error(project: Path) -> None:
    with pytest.raises(NotARepository) as err:
        run(Worktrees(project).create("t1"))
    message = str(err.value)
    assert "not a git repository" in message and str(project) in message
    assert "\n" not in message
    assert not (project / ".aiwg/worktrees").exists()


def test_a_task_id_that_is_not_a_plain_name_is_refused(project: Path) -> None:
    make_repo(project)
    for bad in ("../escape", "a/b", "", ".hidden", "x.lock"):
        with pytest.raises(WorktreeError, match="cannot name a worktree"):
            run(Worktrees(project).create(bad))
    assert branches(project) == ["main"]


def test_something_else_at_the_task_path_is_not_overwritten(project: Path) -> None:
    make_repo(project)
    where = project / ".aiwg/worktrees/t1"
    where.mkdir(parents=True)
    (where / "keep.txt").write_text("mine\n")
    with pytest.raises(WorktreeError, match="already exists"):
        run(Worktrees(project).create("t1"))
    assert (where / "keep.txt").read_text() == "mine\n"
    assert branches(project) == ["main"]
    # An empty directory is what a creation killed part way leaves: it is reused.
    (where / "keep.txt").unlink()
    assert Path(run(Worktrees(project).create("t1")).path, "a.txt").exists()


def test_a_project_in_a_subdirectory_runs_in_the_same_place_in_its_worktree(
    project: Path,
) -> None:
    make_repo(project)
    (project / "apps" / "web").mkdir(parents=True)
    (project / "apps" / "web" / "app.txt").write_text("app\n")
    commit_all(project, "a project inside the repository")
    wts = Worktrees(project / "apps" / "web")
    wt = run(wts.create("t1"))
    assert wt.path == str(project / "apps/web/.aiwg/worktrees/t1")
    workdir = run(wts.workdir(wt))
    assert workdir == os.path.join(wt.path, "apps", "web")
    assert Path(workdir, "app.txt").read_text() == "app\n"
    assert run(Worktrees(project).workdir(run(Worktrees(project).create("t2")))).endswith("/t2")


def test_a_creation_killed_mid_checkout_is_started_over(project: Path) -> None:
    """A daemon killed with -9 leaves git running; git killed part way through its checkout
    leaves a registered, locked, half-filled worktree: the retry rebuilds it."""
    files = {".gitattributes": "*.txt filter=slow\n", "a.txt": "one\n", "b.txt": "bee\n"}
    head = make_repo(project, files)
    (project / "smudge.py").write_text(SMUDGE)
    sh_git(project, "config", "filter.slow.smudge", f"{sys.executable} {project}/smudge.py")
    (project / "hang").touch()
    path = project / ".aiwg/worktrees/t1"
    (project / ".aiwg/worktrees").mkdir(parents=True)
    git = subprocess.Popen(
        ["git", "-C", str(project), "worktree", "add", "-b", "aiwg/t1", "--", str(path)],
        env={**GIT_ENV, "LC_ALL": "C"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for((project / "smudging").exists, 10, "git to be inside its checkout")
    finally:
        os.killpg(git.pid, signal.SIGKILL)
        git.wait()
    assert "locked initializing" in sh_git(project, "worktree", "list", "--porcelain")
    (project / "hang").unlink()
    wt = run(Worktrees(project).create("t1"))
    assert (wt.path, wt.base) == (str(path), head)
    assert (path / "a.txt").read_text() == "one\n" and (path / "b.txt").read_text() == "bee\n"
    assert "locked" not in sh_git(project, "worktree", "list", "--porcelain")
    assert run(Worktrees(project).status(wt))["dirty"] is False


def test_validate_is_what_a_submit_checks(project: Path) -> None:
    with pytest.raises(NotARepository):
        run(Worktrees(project).validate())
    head = make_repo(project)
    sh_git(project, "tag", "-a", "-m", "release", "v1")
    wts = Worktrees(project)
    assert run(wts.validate()) == head
    assert run(wts.validate("v1")) == head  # an annotated tag names its commit
    for bad in ("no-such-ref", "-x", ""):
        with pytest.raises(WorktreeError, match="bad base") as err:
            run(wts.validate(bad))
        assert "\n" not in str(err.value)
    assert branches(project) == ["main"] and worktree_paths(project) == [str(project)]


def test_a_worktree_deleted_by_hand_is_checked_out_again_on_its_branch(project: Path) -> None:
    head = make_repo(project)
    wts = Worktrees(project)
    wt = run(wts.create("t1"))
    (Path(wt.path) / "a.txt").write_text("work\n")
    commit_all(wt.path, "agent work")
    shutil.rmtree(wt.path)
    assert run(wts.status(wt))["exists"] is False
    again = run(wts.create("t1"))
    assert again == wt and again.base == head
    assert (Path(wt.path) / "a.txt").read_text() == "work\n"  # the branch's commit
    assert run(wts.status(again))["commits"] == 1


def test_the_daemons_own_git_variables_do_not_redirect_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started from a git hook, the daemon inherits GIT_DIR and friends."""
    other = project / "other"
    other.mkdir()
    make_repo(other)
    mine = project / "mine"
    mine.mkdir()
    make_repo(mine)
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    run(Worktrees(mine).create("t1"))
    assert "aiwg/t1" in branches(mine) and "aiwg/t1" not in branches(other)


def test_concurrent_creates_of_one_task_give_one_worktree(project: Path) -> None:
    make_repo(project)
    wts = Worktrees(project)

    async def both() -> list[Worktree]:
        return list(await asyncio.gather(wts.create("t1"), wts.create("t1"), wts.create("t2")))

    first, second, other = run(both())
    assert first == second and other.branch == "aiwg/t2"
    assert sorted(branches(project)) == ["aiwg/t1", "aiwg/t2", "main"]
