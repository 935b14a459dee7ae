"""`aiwg doctor`: what is wrong with this project's daemon setup, and what to do about it.

It runs in the CLI process, so it works whether the daemon is running, stuck or killed;
it imports none of the daemon's asyncio parts. One module per group of checks
(checks_*.py), their shape in model.py, the order and threads in run.py, the report in
render.py.
"""

from __future__ import annotations

import typer

from aiwgd.cli.options import Json, Root


def doctor(root: Root = None, json_out: Json = False) -> None:
    """Check the setup (config, files, daemon, limits, agent, git, disk, clock); each
    problem with a fix. Exit 0 when nothing failed (warnings allowed), 1 on a failure."""
    from aiwgd.cli.doctor import render
    from aiwgd.cli.doctor.model import PING_TIMEOUT_S, Context
    from aiwgd.cli.doctor.run import run_all
    from aiwgd.cli.options import EXIT_ERROR, Opts, paths_for, want_json

    timeout = PING_TIMEOUT_S if Opts.timeout is None else Opts.timeout
    results = run_all(Context(paths_for(root), ping_timeout=timeout))
    typer.echo(render.document(results) if want_json(json_out) else render.human(results))
    if not render.all_ok(results):
        raise typer.Exit(EXIT_ERROR)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
