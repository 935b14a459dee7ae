"""`aiwg top` as a user runs it: in a terminal (tmux at 80x24), without one, and what
it costs the other commands (nothing: Textual is imported by `top` only)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DaemonFactory
from tests.top.tophelp import config, submit
from tests.utils import REPO, DaemonProc, env_for_tests, run_cli, run_python, wait_for


def test_without_a_terminal_it_says_so_in_one_line(daemon: DaemonProc) -> None:
    out = run_cli(daemon.root, "top")
    assert out.returncode == 2, out
    assert out.stderr.strip() == (
        "aiwg: top needs a terminal (try `aiwg task list` or `aiwg status`)"
    ), out
    assert "Traceback" not in out.stderr


_MODULES = """
import atexit, json, sys
atexit.register(lambda: json.dump(sorted(sys.modules), open({out!r}, "w")))
sys.argv = ["aiwg", *{args!r}]
from aiwgd.cli import fastpath
fastpath.entry()
"""


@pytest.mark.parametrize("args", [["status"], ["ping"], ["--help"], ["task", "list"]])
def test_other_commands_do_not_import_textual(
    daemon: DaemonProc, tmp_path: Path, args: list[str]
) -> None:
    out_file = tmp_path / "modules.json"
    code = _MODULES.format(out=str(out_file), args=["--root", str(daemon.root), *args])
    run = run_python(code, cwd=REPO)
    assert run.returncode == 0, run
    modules = set(json.loads(out_file.read_text()))
    assert not {m for m in modules if m.split(".")[0] == "textual"}
    assert "aiwgd.cli.top.app" not in modules


class Tmux:
    """A tmux server of the test's own (-L), one 80x24 window."""

    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name, "-f", "/dev/null"]

    def run(self, *args: str) -> str:
        out = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "top")

    def alive(self) -> bool:
        probe = subprocess.run([*self.base, "has-session", "-t", "top"], capture_output=True)
        return probe.returncode == 0

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


@pytest.fixture
def tmux(project: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    t = Tmux(f"aiwg-top-{project.name}")
    yield t
    t.kill()


def _start(tmux: Tmux, root: Path, done: Path, stderr: Path | None = None) -> None:
    env = env_for_tests()
    aiwg = shlex.join([sys.executable, "-m", "aiwgd.cli", "--root", str(root), "top"])
    # The exit code is written where the test can read it; the window stays until then.
    # Textual draws on stderr: only a run expected to fail at once has it kept in a file.
    if stderr is not None:
        aiwg += f" 2> {shlex.quote(str(stderr))}"
    cmd = f"{aiwg}; echo $? > {shlex.quote(str(done))}"
    exports = [f"{k}={shlex.quote(v)}" for k, v in env.items() if k in ("PYTHONPATH", "PATH")]
    tmux.run(
        "new-session", "-d", "-s", "top", "-x", "80", "-y", "24",
        "env", "TERM=xterm-256color", *exports, "sh", "-c", cmd,
    )  # fmt: skip


def test_in_tmux_at_80x24_it_shows_the_tasks_and_q_quits(
    tmux: Tmux, start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(config=config(project))
    tid = submit(d, "tmux")
    done = project / "top.rc"
    _start(tmux, project, done)
    screen = wait_for(
        lambda: (s := tmux.screen()) and "aiwgd pid" in s and tid in s and "first line" in s and s,
        20,
        "the header and the task's row in the tmux pane",
    )
    lines = screen.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines), screen
    tmux.run("send-keys", "-t", "top", "q")
    rc = wait_for(lambda: done.exists() and done.read_text().strip(), 10, "aiwg top to exit")
    assert rc == "0", tmux.screen() if tmux.alive() else rc


def test_in_tmux_with_no_daemon_it_exits_with_one_line(tmux: Tmux, project: Path) -> None:
    done, err = project / "top.rc", project / "top.err"
    _start(tmux, project, done, err)
    rc = wait_for(lambda: done.exists() and done.read_text().strip(), 20, "aiwg top to exit")
    assert rc == "3"
    lines = err.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aiwg: daemon not running"), lines
