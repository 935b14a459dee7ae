"""Isolated tasks (`isolate: "worktree"`) on a real daemon, a real repository, real worktrees.

The agent is a small script this test writes into the project: it records where it ran
and its argv, then does what its prompt says (commit an edit, fail once, sleep, leave
an uncommitted edit). Helpers here are shared by the other test_isolate_* and
test_resume* files.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from aiwgd.client import RpcError
from tests.agents.wthelp import branches, make_repo, sh_git, worktree_paths
from tests.conftest import DaemonFactory
from tests.taskhelp import task_config, wait_terminal
from tests.utils import DaemonProc, alive, wait_for

INVALID, NOT_FOUND, CONFLICT = -32602, -32001, -32002

AGENT = r"""
import json, os, subprocess, sys, time
record, prompt, *rest = sys.argv[1:]
env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
def git(*args):
    subprocess.run(["git", *args], check=True, env=env, capture_output=True,
                   stdin=subprocess.DEVNULL)
def edit(name, text):
    with open(name, "a") as fh:
        fh.write(text + "\n")
words = prompt.split()
seen = {"cwd": os.getcwd(), "argv": sys.argv[1:], "pid": os.getpid(),
        "files": sorted(os.listdir("."))}
with open(record, "a") as fh:
    fh.write(json.dumps(seen) + "\n")
if words[0] == "edit":  # edit NAME TEXT: commit it
    edit(words[1], words[2])
    git("add", "-A")
    git("commit", "-qm", prompt)
elif words[0] == "scribble":  # scribble NAME TEXT: leave it uncommitted
    edit(words[1], words[2])
elif words[0] == "fail-once":  # fail-once NAME: commit an edit, fail the first time
    first = not os.path.exists(words[1])
    edit(words[1], "attempt")
    git("add", "-A")
    git("commit", "-qm", prompt)
    sys.exit(3 if first else 0)
elif words[0] == "sleep":
    time.sleep(120)
elif words[0] == "session":  # session ID: Claude Code's stream-json with that session
    for line in (
        {"type": "system", "subtype": "init", "session_id": words[1], "model": "m",
         "cwd": os.getcwd(), "tools": []},
        {"type": "result", "subtype": "success", "is_error": False, "result": "done",
         "session_id": words[1], "num_turns": 1, "total_cost_usd": 0.01, "duration_ms": 5,
         "usage": {"input_tokens": 1, "output_tokens": 1}},
    ):
        print(json.dumps(line), flush=True)
    if words[2:] == ["then-sleep"]:
        time.sleep(120)
"""


def setup_project(project: Path, repo: bool = True) -> None:
    (project / "agent.py").write_text(AGENT)
    if repo:
        ignore = ".aiwg/\naiwgd.stderr\nagent.py\nagent.jsonl\n"
        make_repo(project, {"a.txt": "one\n", ".gitignore": ignore})


def agent_config(project: Path, cap: int = 2, **agent: Any) -> dict[str, Any]:
    cfg = task_config(cap=cap, grace=0.3)
    cfg["agent"]["command"] = [
        sys.executable,
        str(project / "agent.py"),
        str(project / "agent.jsonl"),
        "{prompt}",
    ]
    cfg["agent"].update(agent)
    return cfg


def runs(project: Path) -> list[dict[str, Any]]:
    path = project / "agent.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def isolated(d: DaemonProc, prompt: str, **params: Any) -> dict[str, Any]:
    task: dict[str, Any] = d.call("task.submit", prompt=prompt, isolate="worktree", **params)
    return wait_terminal(d, task["id"])


def rpc_error(d: DaemonProc, method: str, **params: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        d.call(method, **params)
    return info.value


@pytest.fixture
def repo_daemon(project: Path, start_daemon: DaemonFactory) -> DaemonProc:
    setup_project(project)
    return start_daemon(agent_config(project))


def test_isolated_task_commits_in_its_worktree_then_merge_lands_it(
    project: Path, repo_daemon: DaemonProc
) -> None:
    d = repo_daemon
    head = sh_git(project, "rev-parse", "HEAD")
    task = isolated(d, "edit new.txt hello")
    assert task["state"] == "completed", (task["error"], task["output_tail"])
    wt_path = project / ".aiwg" / "worktrees" / task["id"]
    [run] = runs(project)
    assert run["cwd"] == str(wt_path)
    assert (wt_path / "new.txt").read_text() == "hello\n"
    assert not (project / "new.txt").exists()  # the main tree is untouched
    assert sh_git(project, "rev-parse", "HEAD") == head

    wt = d.call("task.get", id=task["id"])["worktree"]
    assert wt["path"] == str(wt_path) and wt["branch"] == f"aiwg/{task['id']}"
    assert wt["base"] == head
    assert (wt["commits"], wt["dirty"], wt["merged"]) == (1, False, False)

    diff = d.call("task.diff", id=task["id"])
    assert "+++ b/new.txt" in diff["diff"] and "+hello" in diff["diff"]

    merged = d.call("task.merge", id=task["id"])
    assert merged["merged"] is True and merged["into"] == "main"
    assert (project / "new.txt").read_text() == "hello\n"
    assert d.call("task.get", id=task["id"])["worktree"]["merged"] is True

    gone = d.call("task.discard", id=task["id"])  # merged: no force needed
    assert gone["discarded"] is True
    assert not wt_path.exists()
    assert f"aiwg/{task['id']}" not in branches(project)
    assert str(wt_path) not in worktree_paths(project)
    after = d.call("task.get", id=task["id"])["worktree"]
    assert after["exists"] is False and after["head"] is None


def test_discard_refuses_unmerged_work_without_force(
    project: Path, repo_daemon: DaemonProc
) -> None:
    d = repo_daemon
    task = isolated(d, "edit b.txt work")
    err = rpc_error(d, "task.discard", id=task["id"])
    assert err.code == CONFLICT and "not merged" in err.message, err.message
    wt_path = project / ".aiwg" / "worktrees" / task["id"]
    assert (wt_path / "b.txt").exists()  # refused: nothing removed
    d.call("task.discard", id=task["id"], force=True)
    assert not wt_path.exists() and f"aiwg/{task['id']}" not in branches(project)


def test_merge_refused_on_a_dirty_main_tree(project: Path, repo_daemon: DaemonProc) -> None:
    d = repo_daemon
    task = isolated(d, "edit a.txt theirs")
    (project / "a.txt").write_text("mine, not committed\n")
    head = sh_git(project, "rev-parse", "HEAD")
    err = rpc_error(d, "task.merge", id=task["id"])
    assert err.code == CONFLICT
    assert "main tree has uncommitted changes (a.txt)" in err.message, err.message
    assert sh_git(project, "rev-parse", "HEAD") == head
    assert (project / "a.txt").read_text() == "mine, not committed\n"
    assert d.call("task.get", id=task["id"])["worktree"]["merged"] is False


def test_merge_refused_while_the_worktree_has_uncommitted_changes(
    project: Path, repo_daemon: DaemonProc
) -> None:
    d = repo_daemon
    task = isolated(d, "scribble c.txt draft")
    wt = d.call("task.get", id=task["id"])["worktree"]
    assert (wt["dirty"], wt["commits"]) == (True, 0)
    assert "+draft" in d.call("task.diff", id=task["id"])["diff"]  # new files shown too
    err = rpc_error(d, "task.merge", id=task["id"])
    assert err.code == CONFLICT and "uncommitted changes" in err.message


def test_retry_reuses_the_worktree(project: Path, repo_daemon: DaemonProc) -> None:
    d = repo_daemon
    task = isolated(d, "fail-once tries.txt", max_retries=1)
    assert task["state"] == "completed" and task["attempt"] == 2, task
    first, second = runs(project)
    assert first["cwd"] == second["cwd"] == str(project / ".aiwg" / "worktrees" / task["id"])
    assert "tries.txt" in second["files"]  # the first attempt's commit is there
    assert d.call("task.get", id=task["id"])["worktree"]["commits"] == 2


def test_not_a_repository_and_a_bad_base_refused_at_submit(
    project: Path, start_daemon: DaemonFactory
) -> None:
    setup_project(project, repo=False)
    d = start_daemon(agent_config(project))
    err = rpc_error(d, "task.submit", prompt="edit x y", isolate="worktree")
    assert err.code == INVALID
    assert err.message.startswith("Invalid params: isolate: ") and "is not a git repository" in (
        err.message
    ), err.message
    setup_project(project)
    err = rpc_error(d, "task.submit", prompt="edit x y", isolate="worktree", base="nope")
    assert err.code == INVALID and "base: bad base 'nope'" in err.message, err.message
    err = rpc_error(d, "task.submit", prompt="edit x y", base="main")
    assert err.code == INVALID and "base: only an isolated task" in err.message
    assert d.call("task.list")["total"] == 0  # nothing stored
    assert not (project / ".aiwg" / "worktrees").exists()
    assert runs(project) == []


def test_task_runs_from_its_base(project: Path, repo_daemon: DaemonProc) -> None:
    d = repo_daemon
    old = sh_git(project, "rev-parse", "HEAD")
    sh_git(project, "tag", "v1")
    (project / "later.txt").write_text("later\n")
    sh_git(project, "add", "later.txt")
    sh_git(project, "commit", "-qm", "later")
    task = isolated(d, "edit b.txt x", base="v1")
    assert task["state"] == "completed"
    assert d.call("task.get", id=task["id"])["worktree"]["base"] == old
    assert "later.txt" not in runs(project)[0]["files"]


def test_a_worktree_that_cannot_be_made_fails_the_attempt_and_leaves_nothing(
    project: Path, start_daemon: DaemonFactory
) -> None:
    setup_project(project)
    d = start_daemon(agent_config(project, cap=1))
    sh_git(project, "branch", "feature")
    blocker = d.call("task.submit", prompt="sleep")  # holds the only slot
    wait_for(lambda: runs(project), 10, "the blocker to run")
    task = d.call("task.submit", prompt="edit x y", isolate="worktree", base="feature")
    sh_git(project, "branch", "-D", "feature")  # gone before the attempt starts
    d.call("task.cancel", id=blocker["id"])
    end = wait_terminal(d, task["id"])
    assert end["state"] == "failed"
    assert "cannot create the worktree" in end["error"] and "feature" in end["error"], end
    assert not (project / ".aiwg" / "worktrees" / task["id"]).exists()
    assert f"aiwg/{task['id']}" not in branches(project)
    assert len(runs(project)) == 1  # the agent never started


def test_kill9_while_the_agent_runs_keeps_the_worktree(
    project: Path, start_daemon: DaemonFactory
) -> None:
    setup_project(project)
    cfg = agent_config(project)
    d = start_daemon(cfg)
    task = d.call("task.submit", prompt="sleep", isolate="worktree")
    [run] = wait_for(lambda: runs(project), 10, "the agent to start")
    wt_path = project / ".aiwg" / "worktrees" / task["id"]
    assert run["cwd"] == str(wt_path)
    d.kill9()
    d2 = start_daemon(cfg)
    end = wait_terminal(d2, task["id"])
    assert end["state"] == "failed"  # a prompt's interrupt policy: fail
    wait_for(lambda: not alive(run["pid"]), 10, "the orphaned agent to be stopped")
    wt = d2.call("task.get", id=task["id"])["worktree"]
    assert wt["exists"] is True and wt["path"] == str(wt_path)
    assert wt["branch"] in branches(project)


def test_agent_isolate_default_for_prompts_only(project: Path, start_daemon: DaemonFactory) -> None:
    setup_project(project)
    d = start_daemon(agent_config(project, isolate="worktree", worktree_prefix="agents/"))
    prompt = wait_terminal(d, d.call("task.submit", prompt="edit d.txt x")["id"])
    assert prompt["isolate"] == "worktree" and prompt["worktree"]["task_id"] == prompt["id"]
    assert prompt["worktree"]["branch"] == f"agents/{prompt['id']}"
    assert f"agents/{prompt['id']}" in branches(project)
    plain = wait_terminal(d, d.call("task.submit", prompt="edit e.txt x", isolate="none")["id"])
    assert plain["worktree"] is None and (project / "e.txt").exists()
    cmd = [sys.executable, str(project / "agent.py"), str(project / "agent.jsonl"), "edit f.txt"]
    command = wait_terminal(d, d.call("task.submit", command=[*cmd[:3], "scribble f.txt x"])["id"])
    assert command["worktree"] is None and (project / "f.txt").exists()
    assert os.path.realpath(runs(project)[2]["cwd"]) == str(project)


def test_review_methods_on_a_task_without_a_worktree(repo_daemon: DaemonProc) -> None:
    d = repo_daemon
    task = wait_terminal(d, d.call("task.submit", prompt="scribble g.txt x")["id"])
    for method in ("task.diff", "task.merge", "task.discard"):
        err = rpc_error(d, method, id=task["id"])
        assert err.code == NOT_FOUND
        assert err.message == f"task {task['id']} has no worktree: it is not isolated"
    assert rpc_error(d, "task.diff", id="nosuchtask").code == NOT_FOUND


def test_merge_and_discard_wait_for_the_task_to_end(project: Path, repo_daemon: DaemonProc) -> None:
    d = repo_daemon
    task = d.call("task.submit", prompt="sleep", isolate="worktree")
    wait_for(lambda: runs(project), 10, "the agent to start")
    for method in ("task.merge", "task.discard"):
        err = rpc_error(d, method, id=task["id"])
        assert err.code == CONFLICT
        assert err.message == f"task {task['id']} is running in this worktree; wait for it to end"
    assert (project / ".aiwg" / "worktrees" / task["id"]).is_dir()
    d.call("task.cancel", id=task["id"])
    d.call("task.discard", id=task["id"])  # ended, nothing committed: no force needed
    assert not (project / ".aiwg" / "worktrees" / task["id"]).exists()


def test_a_conflicting_merge_is_refused_and_leaves_the_main_tree_as_it_was(
    project: Path, repo_daemon: DaemonProc
) -> None:
    d = repo_daemon
    task = isolated(d, "edit a.txt theirs")
    (project / "a.txt").write_text("ours\n")
    sh_git(project, "commit", "-qam", "ours")
    head = sh_git(project, "rev-parse", "HEAD")
    err = rpc_error(d, "task.merge", id=task["id"])
    assert err.code == CONFLICT
    assert "CONFLICT (content): Merge conflict in a.txt" in err.message, err.message
    assert "merge aborted, main tree unchanged" in err.message
    assert sh_git(project, "rev-parse", "HEAD") == head
    assert (project / "a.txt").read_text() == "ours\n"
    assert sh_git(project, "status", "--porcelain", "--untracked-files=no") == ""
