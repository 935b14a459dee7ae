"""`task.submit {resume: ID}`: a follow-up prompt in the same agent session and worktree.

The agent is the script of test_isolate_flow: `session SID` prints Claude Code's
stream-json init and result lines with that session id (agent.output "stream-json"
makes the daemon read them into the task's session_id), and every run records its
argv and cwd, so the test sees the resume arguments the daemon added.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.agents.test_isolate_flow import (
    INVALID,
    agent_config,
    rpc_error,
    runs,
    setup_project,
)
from tests.agents.wthelp import sh_git
from tests.conftest import DaemonFactory
from tests.taskhelp import wait_terminal
from tests.utils import DaemonProc, run_cli, wait_for

SID = "5e1d0c3a-2b4f-4a6e-9c8d-7f6e5d4c3b2a"


@pytest.fixture
def d(project: Path, start_daemon: DaemonFactory) -> DaemonProc:
    setup_project(project)
    return start_daemon(agent_config(project, output="stream-json"))


def test_resume_runs_in_the_same_session_and_worktree(project: Path, d: DaemonProc) -> None:
    first = d.call("task.submit", prompt=f"session {SID}", isolate="worktree")
    first = wait_terminal(d, first["id"])
    assert first["state"] == "completed" and first["session_id"] == SID, first
    res = run_cli(project, "--json", "task", "submit", "--resume", first["id"], "edit h.txt more")
    assert res.returncode == 0, res.stderr
    follow = json.loads(res.stdout)
    assert follow["resume"] == first["id"] and follow["resume_session"] == SID
    assert follow["worktree"] == first["worktree"]  # the same one, no new worktree
    end = wait_terminal(d, follow["id"])
    assert end["state"] == "completed", (end["error"], end["output_tail"])
    one, two = runs(project)
    assert two["argv"][-2:] == ["--resume", SID]  # agent.resume_args, {session} replaced
    assert one["cwd"] == two["cwd"] == first["worktree"]["path"]
    assert not (project / ".aiwg" / "worktrees" / follow["id"]).exists()
    # The follow-up's commit is on the first task's branch, as its review shows.
    assert d.call("task.get", id=first["id"])["worktree"]["commits"] == 1
    assert "+more" in d.call("task.diff", id=follow["id"])["diff"]
    assert sh_git(project, "log", "-1", "--format=%s", first["worktree"]["branch"]) == (
        "edit h.txt more"
    )


def test_resume_refuses_what_has_no_session(project: Path, d: DaemonProc) -> None:
    err = rpc_error(d, "task.submit", prompt="more", resume="nosuchtask")
    assert (err.code, err.message) == (
        INVALID,
        "Invalid params: resume: no task with id 'nosuchtask'",
    )
    cmd = wait_terminal(d, d.call("task.submit", command=["true"])["id"])
    err = rpc_error(d, "task.submit", prompt="more", resume=cmd["id"])
    assert err.code == INVALID
    assert (
        err.message == f"Invalid params: resume: task {cmd['id']} is a command, not an agent prompt"
    )
    silent = wait_terminal(d, d.call("task.submit", prompt="scribble z.txt x")["id"])
    assert silent["session_id"] is None
    err = rpc_error(d, "task.submit", prompt="more", resume=silent["id"])
    assert err.code == INVALID and f"resume: task {silent['id']} has no agent session id" in (
        err.message
    )
    err = rpc_error(d, "task.submit", command=["true"], resume=silent["id"])
    assert err.code == INVALID and "resume: only a prompt task can resume" in err.message
    res = run_cli(project, "task", "submit", "--resume", "nosuchtask", "more")
    assert res.returncode != 0
    assert res.stderr.strip().count("\n") == 0 and "no task with id 'nosuchtask'" in res.stderr
    assert len(runs(project)) == 1  # only the silent task ever ran the agent


def test_a_session_that_ran_in_the_project_resumes_there(project: Path, d: DaemonProc) -> None:
    sub = project / "sub"
    sub.mkdir()
    first = d.call("task.submit", prompt=f"session {SID}", cwd=str(sub))
    assert wait_terminal(d, first["id"])["session_id"] == SID
    err = rpc_error(d, "task.submit", prompt="more", resume=first["id"], isolate="worktree")
    assert err.code == INVALID
    assert f"isolate: task {first['id']} ran in the project, where its session" in err.message
    follow = d.call("task.submit", prompt="scribble t.txt x", resume=first["id"])
    assert follow["cwd"] == str(sub) and follow["worktree"] is None  # where the session ran
    assert wait_terminal(d, follow["id"])["state"] == "completed"
    assert (sub / "t.txt").exists()
    assert runs(project)[-1]["argv"][-2:] == ["--resume", SID]


def test_resume_refused_while_the_session_runs_or_with_a_new_base(
    project: Path, d: DaemonProc
) -> None:
    live = d.call("task.submit", prompt=f"session {SID} then-sleep", isolate="worktree")
    wait_for(lambda: d.call("task.get", id=live["id"])["session_id"] == SID, 10, "the session")
    err = rpc_error(d, "task.submit", prompt="more", resume=live["id"])
    assert err.code == INVALID
    assert f"resume: task {live['id']} is still running; resume it once it ends" in err.message
    d.call("task.cancel", id=live["id"])
    err = rpc_error(d, "task.submit", prompt="more", resume=live["id"], base="main")
    assert err.code == INVALID
    assert f"base: task {live['id']}'s session resumes in its worktree" in err.message
    assert d.call("task.list")["total"] == 1
