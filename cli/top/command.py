"""`aiwg top`: the live full-screen view (cli/top/app.py). Textual is imported only when
the command runs, never by `aiwg --help` or any other command."""

from __future__ import annotations

import sys

import typer

from aiwgd.cli.options import EXIT_USAGE, Root, client, paths_for


def top(root: Root = None) -> None:
    """Live view: tasks, services, events, usage (Enter: log, c/p/r, /: filter, q: quit)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        typer.echo("aiwg: top needs a terminal (try `aiwg task list` or `aiwg status`)", err=True)
        raise typer.Exit(EXIT_USAGE)
    with client(root) as c:  # nothing answers: one line and exit 3, like every command
        c.call("ping")
    from aiwgd.cli.top.app import TopApp

    TopApp(paths_for(root).socket_address()).run()


def register(app: typer.Typer) -> None:
    app.command("top")(top)
