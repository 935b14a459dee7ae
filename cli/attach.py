"""`aiwg attach`: a tmux session for the project, the chat beside the task list.

The session is `aiwg-<project dir name>`: the interactive chat (`aiwg chat`) in the
left pane, the task list redrawn every 2 s in the right one. It is made if missing
(after starting the daemon if it is not running), else attached again.

Every program tmux runs here is given as an argv list of several words, which tmux
executes directly; the one shell (the task list's redraw loop) has a fixed script and
gets the project's path as a positional parameter, so no user string is ever read
by a shell.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from aiwgd.cli.options import EXIT_ERROR, Root, paths_for

REFRESH_S = 2
# "$0" "$@" is the aiwg argv below: data, never parsed as shell text.
WATCH_SCRIPT = 'while :; do printf "\\033[H\\033[2J"; "$0" "$@"; sleep {}; done'


class AttachError(Exception):
    """What stops `aiwg attach`, as one line."""


def session_name(root: Path) -> str:
    """tmux's name for the project: tmux reads '.' and ':' in a target, so those go."""
    return "aiwg-" + re.sub(r"[^A-Za-z0-9_-]", "_", root.name)


def aiwg_argv(root: Path, *args: str) -> list[str]:
    """This aiwg, by this interpreter: a pane runs the same version as the caller."""
    return [sys.executable, "-m", "aiwgd.cli", "--root", str(root), *args]


def pane_commands(root: Path) -> tuple[list[str], list[str]]:
    """(chat pane argv, task list pane argv)."""
    chat = aiwg_argv(root, "chat")
    watch = ["sh", "-c", WATCH_SCRIPT.format(REFRESH_S), *aiwg_argv(root, "task", "list")]
    return chat, watch


class Tmux:
    """tmux on the user's server, or a private one (`-L NAME`)."""

    def __init__(self, program: str, socket_name: str | None) -> None:
        self.base = [program, *(["-L", socket_name] if socket_name else [])]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        if check and done.returncode != 0:
            reason = (done.stderr.strip() or f"exit {done.returncode}").splitlines()[-1]
            raise AttachError(f"tmux {args[0]} failed: {reason}")
        return done

    def has(self, name: str) -> bool:
        return self.run("has-session", "-t", f"={name}", check=False).returncode == 0

    def create(self, name: str, root: Path) -> None:
        chat, watch = pane_commands(root)
        target = f"={name}:"
        self.run("new-session", "-d", "-s", name, "-c", str(root), "-x", "160", "-y", "48", *chat)
        self.run("split-window", "-h", "-d", "-t", target, "-c", str(root), *watch)
        self.run("select-pane", "-t", f"{target}.0")  # typing goes to the chat

    def attach_argv(self, name: str) -> list[str]:
        # Inside tmux already, attaching would nest a client: switch this one instead
        # (only on the same server: a client cannot switch to another server's session).
        same_server = len(self.base) == 1
        verb = "switch-client" if os.environ.get("TMUX") and same_server else "attach-session"
        return [*self.base, verb, "-t", f"={name}"]


def _ensure_daemon(root: str | None) -> None:
    from aiwgd.cli import daemonctl

    paths = paths_for(root)
    if daemonctl.running_pid(paths) is None:
        pid = daemonctl.start_detached(paths)
        typer.echo(f"aiwgd started (PID {pid})", err=True)


def attach(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="make the session but do not attach to it")
    ] = False,
    socket_name: Annotated[
        str | None,
        typer.Option("--socket-name", "-L", metavar="NAME", help="tmux server socket (tmux -L)"),
    ] = None,
    root: Root = None,
) -> None:
    """A tmux session with the chat and the task list (made if missing, else attached)."""
    program = shutil.which("tmux")
    if program is None:
        typer.echo(
            "aiwg: tmux is not installed (aiwg attach needs it; aiwg chat does not)", err=True
        )
        raise typer.Exit(EXIT_ERROR)
    project = paths_for(root).root
    tmux = Tmux(program, socket_name)
    name = session_name(project)
    _ensure_daemon(root)  # also for a session left from before the daemon stopped
    try:
        if tmux.has(name):
            typer.echo(f"tmux session {name} exists", err=True)
        else:
            tmux.create(name, project)
            typer.echo(f"tmux session {name} made", err=True)
    except AttachError as exc:
        typer.echo(f"aiwg: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    if detach:
        return
    argv = tmux.attach_argv(name)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)  # the terminal is tmux's from here


def register(app: typer.Typer) -> None:
    app.command("attach")(attach)
