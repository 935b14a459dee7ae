"""`aiwg start|stop|restart|status|ping|logs|rpc`: the daemon itself."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from aiwgd.cli import daemonctl, fastpath
from aiwgd.cli.daemonctl import CtlError
from aiwgd.cli.options import (
    Json,
    Opts,
    Root,
    client,
    emit,
    json_object_arg,
    paths_for,
    quick_timeout,
    want_json,
)


def start(
    foreground: Annotated[bool, typer.Option("--foreground", help="run in this terminal")] = False,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Start the daemon (detached unless --foreground)."""
    paths = paths_for(root)
    if foreground:
        from aiwgd.main import main as daemon_main  # only this path loads the daemon

        raise typer.Exit(daemon_main(["--root", str(paths.root)]))
    pid = daemonctl.start_detached(paths)
    emit({"started": True, "pid": pid}, want_json(json_out), f"aiwgd started (PID {pid})")


def stop(
    fast: Annotated[bool, typer.Option("--fast", help="skip the grace period")] = False,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Stop the daemon and wait until it is gone."""
    done = daemonctl.stop(paths_for(root), fast=fast, answer_s=quick_timeout())
    if done.pid is not None:
        emit(
            {"stopped": True, "pid": done.pid},
            want_json(json_out),
            f"aiwgd stopped (PID {done.pid})",
        )
        return
    # Not running. What its tasks and services left (a kill -9) was stopped now, if any.
    note = f" (removed stale {', '.join(done.cleaned)})" if done.cleaned else ""
    lines = [f"aiwgd is not running{note}"]
    data = {"stopped": False, "running": False, "cleaned": list(done.cleaned), "left": []}
    if done.left:
        from aiwgd.cli import leftovers

        lines.append(leftovers.stopped_line(done.left))
        data["left"] = leftovers.stop_report(done.left)
    emit(data, want_json(json_out), "\n".join(lines))
    if done.left and done.left.survivors:
        n = len(done.left.survivors)
        raise CtlError(f"{n} process{'es' if n > 1 else ''} it left still running after SIGKILL")


def restart(root: Root = None, json_out: Json = False) -> None:
    """Stop (if running), then start detached."""
    paths = paths_for(root)
    daemonctl.stop(paths)
    pid = daemonctl.start_detached(paths)
    emit({"started": True, "pid": pid}, want_json(json_out), f"aiwgd restarted (PID {pid})")


def status(root: Root = None, json_out: Json = False) -> None:
    """Show pid, uptime, config state and subsystems (exit 0 running, 3 not running)."""
    raise typer.Exit(fastpath.status(root or Opts.root, want_json(json_out), quick_timeout()))


def ping(root: Root = None, json_out: Json = False) -> None:
    """Check that the daemon answers."""
    fastpath.ping(root or Opts.root, want_json(json_out), quick_timeout())


def logs(
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="lines to show")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="keep printing new lines")] = False,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Show the daemon log (readable form; --json prints the raw JSON lines)."""
    from aiwgd.cli import render

    render.show_log(paths_for(root).log_file, lines, follow, want_json(json_out))


def rpc(
    method: Annotated[str, typer.Argument(help="e.g. daemon.status")],
    params: Annotated[str, typer.Argument(help="named params as a JSON object")] = "{}",
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Call any RPC method and print its result as JSON."""
    parsed = json_object_arg(params, "PARAMS_JSON", "a JSON object of named params")
    # Any method, some long (task.wait, task.cancel): no limit unless --timeout gives one.
    with client(root, timeout=Opts.timeout) as c:
        typer.echo(json.dumps(c.call(method, **parsed), indent=2, default=str))


def register(app: typer.Typer) -> None:
    for command in (start, stop, restart, status, ping, logs, rpc):
        app.command()(command)
