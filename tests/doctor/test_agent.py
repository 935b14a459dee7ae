"""`aiwg doctor` on what prompt tasks run: the agent program and its output format, and
git when tasks are isolated in worktrees."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.doctor.helpers import (
    PLAIN_HELP,
    STREAM_JSON_HELP,
    doctor,
    fake_agent,
    fix_of,
    line_of,
    project_config,
    verdicts,
)


def test_an_agent_without_stream_json_fails_when_the_config_wants_it(project: Path) -> None:
    agent = fake_agent(project / "bin", PLAIN_HELP)
    project_config(
        project, {"agent": {"command": [str(agent), "-p", "{prompt}"], "output": "stream-json"}}
    )
    out = doctor(project)
    assert out.returncode == 1, out
    line = line_of(out, "agent")
    assert line.startswith("[FAIL]")
    assert f"agent.output is stream-json but {agent} --help never mentions" in line
    assert fix_of(out, "agent").startswith('set agent.output to "text" in ')


def test_the_same_agent_is_fine_for_text_output(project: Path) -> None:
    agent = fake_agent(project / "bin", PLAIN_HELP)
    project_config(project, {"agent": {"command": [str(agent), "-p", "{prompt}"]}})
    check = verdicts(doctor(project, "--json"))["agent"]
    assert check["status"] == "ok", check
    assert check["message"] == f"{agent} (agent.output text)"


def test_an_agent_found_on_agent_env_path_with_stream_json(project: Path) -> None:
    bin_dir = project / "bin"
    fake_agent(bin_dir, STREAM_JSON_HELP, name="claude")
    project_config(project, {"agent": {"env": {"PATH": str(bin_dir)}}})  # ["claude", ...]
    check = verdicts(doctor(project, "--json"))["agent"]
    assert check["status"] == "ok", check
    assert check["message"].startswith(f"{bin_dir / 'claude'} (supports stream-json")


def test_a_missing_agent_warns_and_fails_once_prompts_need_it(project: Path) -> None:
    cmd = ["aiwg-no-such-agent", "-p", "{prompt}"]
    project_config(project, {"agent": {"command": cmd}})
    out = doctor(project)
    assert out.returncode == 0, out
    line = line_of(out, "agent")
    assert line.startswith("[warn]")
    assert 'agent.command "aiwg-no-such-agent" is not found on the daemon\'s PATH' in line
    assert fix_of(out, "agent").startswith("install aiwg-no-such-agent, or set agent.command[0]")
    # A rule that runs prompts makes it a failure: those tasks cannot start.
    rule = {
        "id": "review",
        "trigger": {"type": "file.*"},
        "action": {"type": "task", "prompt": "review {{data.path}}"},
    }
    project_config(project, {"agent": {"command": cmd}, "rules": [rule]})
    assert verdicts(doctor(project, "--json"))["agent"]["status"] == "fail"


def test_worktree_isolation_outside_a_git_repository_fails(project: Path) -> None:
    project_config(project, {"agent": {"isolate": "worktree"}})
    out = doctor(project)
    assert out.returncode == 1, out
    line = line_of(out, "git")
    assert line.startswith("[FAIL]")
    assert f"agent.isolate is worktree but {project} is not a git repository" in line
    assert fix_of(out, "git").startswith(f"git -C {project} init and commit once, or set")
    # A repository without a commit yet: a worktree has nothing to start from.
    subprocess.run(["git", "-C", str(project), "init", "-q"], check=True)
    check = verdicts(doctor(project, "--json"))["git"]
    assert check["status"] == "fail" and "has no commit yet" in check["message"], check


def test_git_is_not_looked_at_without_worktrees(project: Path) -> None:
    project_config(project)
    check = verdicts(doctor(project, "--json"))["git"]
    assert check["status"] == "skip", check


def test_an_agent_program_named_per_task_is_not_looked_up(project: Path) -> None:
    project_config(project, {"agent": {"command": ["{agent}", "-p", "{prompt}"]}})
    check = verdicts(doctor(project, "--json"))["agent"]
    assert check["status"] == "skip", check
    assert check["message"] == 'agent.command[0] is "{agent}": each task names its own program'
