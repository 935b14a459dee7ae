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
from aiwgd.config.paths import Paths


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
    pid = _start_showing(paths, want_json(json_out))
    emit({"started": True, "pid": pid}, want_json(json_out), f"aiwgd started (PID {pid})")


def stop(
    fast: Annotated[bool, typer.Option("--fast", help="skip the grace period")] = False,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Stop the daemon and wait until it is gone."""
    done = _stop_showing(paths_for(root), fast, want_json(json_out))
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
    _stop_showing(paths, False, want_json(json_out), answer_s=5.0)
    pid = _start_showing(paths, want_json(json_out))
    emit({"started": True, "pid": pid}, want_json(json_out), f"aiwgd restarted (PID {pid})")


def _start_showing(paths: Paths, as_json: bool) -> int:
    """start_detached with its steps on stderr (cli/progress.py)."""
    from aiwgd.cli.ctlsteps import PLAIN_AFTER_S, StartSteps
    from aiwgd.cli.progress import Progress

    with Progress.unless(as_json, PLAIN_AFTER_S) as shown:
        shown.step(StartSteps(paths))
        return daemonctl.start_detached(paths)


def _stop_showing(
    paths: Paths, fast: bool, as_json: bool, answer_s: float | None = None
) -> daemonctl.Stopped:
    """daemonctl.stop with its steps on stderr (cli/progress.py)."""
    from aiwgd.cli.ctlsteps import PLAIN_AFTER_S, stop_steps
    from aiwgd.cli.progress import Progress

    answer = quick_timeout() if answer_s is None else answer_s
    with Progress.unless(as_json, PLAIN_AFTER_S) as shown:
        if shown.mode != "off":  # the status call it makes is for the steps only
            shown.step(stop_steps(paths, fast, answer))
        return daemonctl.stop(paths, fast=fast, answer_s=answer)


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
