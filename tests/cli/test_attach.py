"""`aiwg attach`: a tmux session with the chat and the task list, on a private tmux server.

The tmux server of these tests lives under the project (TMUX_TMPDIR) with its own
socket name (-L), so a user's own tmux is never touched; it is killed at the end, and
so is the daemon `aiwg attach` started.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiwgd.cli.attach import session_name
from tests.taskhelp import task_config
from tests.utils import BASE_CONFIG, deep_merge, env_for_tests, run_cli, wait_for, write_config

TMUX = shutil.which("tmux")
SOCKET = "aiwg-test"


def test_without_tmux_one_line_and_exit_1(project: Path) -> None:
    empty = project / "bin"
    empty.mkdir()
    out = run_cli(project, "attach", env={**env_for_tests(), "PATH": str(empty)})
    assert out.returncode == 1
    assert out.stderr == "aiwg: tmux is not installed (aiwg attach needs it; aiwg chat does not)\n"
    assert out.stdout == ""
    assert not (project / ".aiwg" / "daemon.pid").exists()  # nothing was started


def test_session_name_is_the_project_dir_tmux_can_target() -> None:
    assert session_name(Path("/home/u/my.app:2")) == "aiwg-my_app_2"
    assert session_name(Path("/srv/web-api_1")) == "aiwg-web-api_1"


@pytest.fixture
def tmux_env(project: Path) -> Iterator[dict[str, str]]:
    if TMUX is None:
        pytest.skip("tmux is not installed (CI installs it)")
    env = {**env_for_tests(), "TMUX_TMPDIR": str(project)}
    env.pop("TMUX", None)  # not inside the user's tmux: attach, never switch-client
    # quiet (no watcher, no cron jobs); the agent prints its prompt
    write_config(project, deep_merge(BASE_CONFIG, task_config()))
    yield env
    subprocess.run([TMUX, "-L", SOCKET, "kill-server"], env=env, capture_output=True)
    run_cli(project, "stop", env=env)


def tmux(env: dict[str, str], *args: str) -> str:
    assert TMUX is not None
    done = subprocess.run(
        [TMUX, "-L", SOCKET, *args], env=env, capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_cli_json(project: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    out = run_cli(project, "--json", *args, env=env)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_makes_a_session_with_the_chat_and_the_task_list(
    project: Path, tmux_env: dict[str, str]
) -> None:
    name = session_name(project)
    out = run_cli(project, "attach", "--detach", "-L", SOCKET, env=tmux_env)
    assert out.returncode == 0, out.stderr
    assert "aiwgd started" in out.stderr and f"tmux session {name} made" in out.stderr
    assert run_cli(project, "ping", env=tmux_env).returncode == 0  # the daemon runs

    panes = tmux(tmux_env, "list-panes", "-t", f"={name}:", "-F", "#{pane_index}")
    assert panes.split() == ["0", "1"]
    assert tmux(tmux_env, "display", "-p", "-t", f"={name}:", "#{pane_index}").strip() == "0"

    def shows(pane: str, text: str) -> bool:
        return text in tmux(tmux_env, "capture-pane", "-p", "-t", f"={name}:.{pane}")

    wait_for(lambda: shows("0", "chat with the agent"), 15, "the chat in the left pane")
    wait_for(lambda: shows("1", "no tasks"), 15, "the task list in the right pane")
    # The left pane is a live chat: a typed line becomes a chat task (its agent
    # prints the prompt back), and the right pane's list shows it at its next redraw.
    wait_for(lambda: shows("0", "\n>"), 15, "the chat's prompt")  # trailing space cut
    tmux(tmux_env, "send-keys", "-t", f"={name}:.0", "-l", "hello from tmux")
    tmux(tmux_env, "send-keys", "-t", f"={name}:.0", "Enter")
    wait_for(lambda: shows("0", "no session id"), 15, "the chat's answer")
    [task] = run_cli_json(project, tmux_env, "task", "list", "--source", "chat")["tasks"]
    assert task["prompt"] == "hello from tmux" and task["state"] == "completed"
    wait_for(lambda: shows("1", task["id"]), 15, "the chat task in the refreshed list")

    again = run_cli(project, "attach", "--detach", "-L", SOCKET, env=tmux_env)
    assert again.returncode == 0 and f"tmux session {name} exists" in again.stderr
    assert tmux(tmux_env, "list-panes", "-t", f"={name}:", "-F", "#{pane_index}").split() == [
        "0",
        "1",
    ]
