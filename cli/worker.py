"""`aiwg worker --url URL [...]`: run RQ workers for this project's remote attempts
(aiwgd.remote.worker); `aiwg worker list`: the workers the daemon sees (executor.workers)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from aiwgd.cli import render
from aiwgd.cli.options import EXIT_USAGE, Json, Root, client, emit, want_json

# aiwgd.remote (rq, redis) is imported only when a worker runs: `aiwg --help` imports
# this module for its short help.

worker_app = typer.Typer(
    invoke_without_command=True,
    help="Run attempts of this project's tasks sent through Redis (RQ); `list`: the workers.",
)

Url = Annotated[
    str | None,
    typer.Option("--url", help="Redis: unix:///path/redis.sock, redis://host:6379/0, rediss://..."),
]
Queue = Annotated[
    str | None, typer.Option("--queue", help="RQ queue (default aiwg-<root folder name>)")
]
WorkerRoot = Annotated[
    str | None,
    typer.Option("--root", help="where the project is checked out here (default: the cwd)"),
]
MaxParallel = Annotated[
    int, typer.Option("--max-parallel", min=1, max=256, help="attempts run at once (N workers)")
]
Name = Annotated[
    str | None,
    typer.Option("--name", help="worker name in RQ (default HOST.PID; NAME-1..N with N > 1)"),
]
PasswordEnv = Annotated[
    str | None,
    typer.Option("--password-env", metavar="VAR", help="environment variable holding the password"),
]


@worker_app.callback()
def worker(
    ctx: typer.Context,
    url: Url = None,
    queue: Queue = None,
    root: WorkerRoot = None,
    max_parallel: MaxParallel = 1,
    name: Name = None,
    password_env: PasswordEnv = None,
) -> None:
    """Run RQ workers that take this project's remote attempts from Redis, until stopped
    (SIGTERM: finish the running attempts; a second one: stop them down the ladder)."""
    if ctx.invoked_subcommand is not None:
        return
    if not url:
        typer.echo("aiwg worker: --url is required (e.g. --url unix:///run/redis.sock)", err=True)
        raise typer.Exit(EXIT_USAGE)
    from aiwgd.remote.worker import run
    from aiwgd.remote.workersetup import EXIT_REFUSED, Options, StartError

    try:
        code = run(Options(url, queue, root, max_parallel, name, password_env))
    except StartError as exc:
        typer.echo(f"aiwg worker: {exc}", err=True)
        raise typer.Exit(EXIT_REFUSED) from None
    raise typer.Exit(code)


def render_workers(result: dict[str, Any], columns: int | None) -> str:
    rows = result.get("workers", [])
    lines = []
    if rows:
        head = f"{'NAME':<24} {'EXECUTOR':<10} {'HOST':<16} {'PID':>7} {'STATE':<9} "
        lines.append(render.fit(head + f"{'TASK':<22} LAST HEARTBEAT", columns))
    for w in rows:
        line = (
            f"{w.get('name', ''):<24} {w.get('executor', ''):<10} {w.get('host') or '':<16} "
            f"{w.get('pid') or '':>7} {w.get('state', ''):<9} {w.get('task') or '-':<22} "
            f"{w.get('last_heartbeat') or '-'}"
        )
        lines.append(render.fit(line, columns))
    for executor, why in (result.get("unreachable") or {}).items():
        lines.append(f"{executor}: {why}")
    return "\n".join(lines) if lines else "no workers"


@worker_app.command("list")
def list_workers(root: Root = None, json_out: Json = False) -> None:
    """The workers on each remote executor's queue: host, pid, state, current task."""
    with client(root) as c:
        result = c.call("executor.workers")
    emit(result, want_json(json_out), render_workers(result, render.width()))


def register(app: typer.Typer) -> None:
    app.add_typer(worker_app, name="worker")
