"""Exit codes and the shell around `aiwg` (issue 8): usage mistakes exit 2, Ctrl-C on a
follow exits 130, `--version`, and shell completion that installs and answers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

import aiwgd
from tests.cli.clihelp import aiwg, one_line_error
from tests.conftest import DaemonFactory
from tests.taskhelp import prog
from tests.utils import REPO, DaemonProc, env_for_tests

# ---- usage mistakes: exit 2 -------------------------------------------------------------


def test_usage_mistakes_exit_2(daemon: DaemonProc) -> None:
    root = ["--root", str(daemon.root)]
    cases: list[tuple[list[str], str]] = [
        (["task", "submit", "x", "--priority", "urgent"], '"urgent" is not a priority'),
        (["task", "run", "--priority", "urgent", "--", "true"], '"urgent" is not a priority'),
        (["task", "run", "--env", "NOEQUALS", "--", "true"], "expected KEY=VALUE"),
        (["rpc", "ping", "[1]"], "PARAMS_JSON must be a JSON object"),
        (["rpc", "ping", "{bad"], "PARAMS_JSON is not valid JSON"),
        (["rpc", "daemon.stop", '{"fast": "yes"}'], '"yes" is not true or false'),
        (["emit", "a.b", "[1]"], "DATA must be a JSON object"),
        (["dlq", "replay"], "give a dead letter's ID or --all"),
    ]
    for args, why in cases:
        out = aiwg(*root, *args)
        assert out.returncode == 2, (args, out)
        assert why in one_line_error(out), args
    # click's own usage errors (a missing ID) say so with the usage line: exit 2 too.
    for args in (["task", "get"], ["task", "cancel"], ["task", "logs"], ["task", "wait"]):
        out = aiwg(*root, *args)
        assert out.returncode == 2 and "Missing argument 'ID'" in out.stderr, (args, out)
    # Not a usage mistake: a well-formed ID nobody has is "not found" (exit 1).
    out = aiwg(*root, "task", "get", "nope")
    assert (out.returncode, one_line_error(out)) == (
        1,
        "aiwg: error -32001: no task with id 'nope'",
    )
    assert daemon.call("ping") == "pong"  # daemon.stop with a bad param stopped nothing


# ---- Ctrl-C on a follow: exit 130 -------------------------------------------------------


def _take_terminal() -> None:
    # In the child: the pty (its stdin) becomes its controlling terminal, so ^C typed
    # there sends SIGINT to it, as in a user's shell.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def ctrl_c_when(args: list[str], ready: str, timeout: float = 15.0) -> tuple[int, str]:
    """Run `aiwg ARGS` on a terminal, type ^C once `ready` shows; (exit code, screen)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiwgd.cli", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env_for_tests(),
        cwd=REPO,
        start_new_session=True,
        preexec_fn=_take_terminal,
    )
    os.close(slave)
    screen = b""
    try:
        deadline = time.monotonic() + timeout
        while ready.encode() not in screen:
            left = deadline - time.monotonic()
            assert left > 0 and proc.poll() is None, f"{ready!r} never showed: {screen!r}"
            if select.select([master], [], [], left)[0]:
                screen += os.read(master, 65536)
        os.write(master, b"\x03")  # the user's Ctrl-C
        code = proc.wait(timeout)
        with contextlib.suppress(OSError):  # EIO once the child closed the terminal
            while select.select([master], [], [], 0.5)[0]:
                chunk = os.read(master, 65536)
                if not chunk:
                    break
                screen += chunk
        return code, screen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_ctrl_c_on_every_follow_exits_130(start_daemon: DaemonFactory) -> None:
    # A short grace: the two sleeping tasks go down the ladder at once when it stops.
    daemon = start_daemon({"daemon": {"stop_grace_seconds": 0.2}})
    root = ["--root", str(daemon.root)]
    task = daemon.call("task.submit", command=prog("--say", "hello", "--sleep", "60"))
    for args, ready in (
        (["logs", "-f"], "INFO"),
        (["events", "-f"], "daemon.started"),
        (["task", "logs", task["id"], "-f"], "hello"),
        (["task", "run", "-f", "--", *prog("--say", "again", "--sleep", "60")], "again"),
    ):
        code, screen = ctrl_c_when([*root, *args], ready)
        assert code == 130, (args, screen)
        assert "Traceback" not in screen and "Aborted" not in screen, (args, screen)


# ---- --version ----------------------------------------------------------------------------


def test_version() -> None:
    out = aiwg("--version")
    assert (out.returncode, out.stdout, out.stderr) == (0, f"aiwg {aiwgd.__version__}\n", "")
    daemon = subprocess.run(
        [sys.executable, "-m", "aiwgd", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env_for_tests(),
    )
    assert (daemon.returncode, daemon.stdout) == (0, f"aiwgd {aiwgd.__version__}\n"), daemon
    assert aiwgd.__version__ != "0+unknown"


# ---- shell completion -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shell", "marks"),
    [
        ("bash", ["complete -o default -F _aiwg_completion aiwg", "_AIWG_COMPLETE=complete_bash"]),
        ("zsh", ["#compdef aiwg", "_AIWG_COMPLETE=complete_zsh"]),
        ("fish", ["complete --command aiwg", "_AIWG_COMPLETE=complete_fish"]),
    ],
)
def test_show_completion_prints_the_script(shell: str, marks: list[str]) -> None:
    out = aiwg("--show-completion", shell)
    assert out.returncode == 0, out
    for mark in marks:
        assert mark in out.stdout, (mark, out.stdout)


def complete(env_extra: dict[str, str]) -> list[str]:
    env = {**env_for_tests(), **env_extra}
    out = aiwg(env=env)
    assert out.returncode == 0, out
    return out.stdout.split()


def test_completion_callback_answers_partial_commands() -> None:
    bash = {"_AIWG_COMPLETE": "complete_bash", "COMP_CWORD": "1", "COMP_WORDS": "aiwg ta"}
    assert complete(bash) == ["task"]
    assert sorted(complete({**bash, "COMP_WORDS": "aiwg st"})) == ["start", "status", "stop"]
    assert sorted(complete({**bash, "COMP_CWORD": "2", "COMP_WORDS": "aiwg task l"})) == [
        "list",
        "logs",
    ]
    zsh = complete({"_AIWG_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "aiwg sto"})
    assert "stop" in " ".join(zsh)
    fish = complete(
        {
            "_AIWG_COMPLETE": "complete_fish",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
            "_TYPER_COMPLETE_ARGS": "aiwg pi",
        }
    )
    assert fish and fish[0].startswith("ping"), fish


def test_install_completion_and_use_it_in_bash(tmp_path: Path) -> None:
    env = {**env_for_tests(), "HOME": str(tmp_path)}
    out = aiwg("--install-completion", "bash", env=env)
    assert out.returncode == 0, out
    script = tmp_path / ".bash_completions" / "aiwg.sh"
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
    # The installed script, sourced by a real bash, completes through the real `aiwg`.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aiwg").write_text(f'#!/bin/sh\nexec {sys.executable} -m aiwgd.cli "$@"\n')
    (bin_dir / "aiwg").chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    bash = subprocess.run(
        [
            "bash",
            "--norc",
            "-c",
            f"source {script}; COMP_WORDS=(aiwg task ca); COMP_CWORD=2; "
            '_aiwg_completion aiwg; printf "%s\\n" "${COMPREPLY[@]}"',
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert (bash.returncode, bash.stdout) == (0, "cancel\n"), bash
    # zsh and fish are not installed here: their files are written where those shells look.
    for shell, path in (("zsh", ".zfunc/_aiwg"), ("fish", ".config/fish/completions/aiwg.fish")):
        out = aiwg("--install-completion", shell, env=env)
        assert out.returncode == 0, out
        assert "_AIWG_COMPLETE" in (tmp_path / path).read_text()
    # Without a shell named, the shell that runs aiwg is detected (here: bash).
    (tmp_path / ".bash_completions" / "aiwg.sh").unlink()
    detected = subprocess.run(
        ["bash", "--norc", "-c", "aiwg --install-completion; echo done"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert detected.returncode == 0 and "bash completion installed" in detected.stdout, detected
    assert script.exists() and "Traceback" not in detected.stderr
