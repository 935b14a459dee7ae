"""`aiwg`: the thin command-line client. Talks to the daemon only over its socket.

Exit codes: 0 ok, 1 error (one line on stderr), 2 usage (a bad option or argument, or
params the daemon refuses), 3 daemon not running, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from aiwgd.cli import completion, daemonctl, fastpath, leftovers, render
from aiwgd.cli.daemonctl import CtlError
from aiwgd.cli.options import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_RUNNING,
    EXIT_USAGE,
    Json,
    Opts,
    QuickTimeout,
    Root,
    UsageError,
    client,
    emit,
    json_object_arg,
    paths_for,
    quick_timeout,
    want_json,
)
from aiwgd.client import ClientError, DaemonNotRunning, RpcError
from aiwgd.config.paths import RootError

app = typer.Typer(
    # --install-completion / --show-completion for the shell that runs aiwg;
    # `aiwg --show-completion bash` (a shell named) is answered in main().
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="aiwg: control the aiwgd automation daemon.",
)
config_app = typer.Typer(no_args_is_help=True, help="Validate, show or create the config.")
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        import aiwgd

        typer.echo(f"aiwg {aiwgd.__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    root: Root = None,
    json_out: Json = False,
    timeout: QuickTimeout = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    Opts.root, Opts.json, Opts.timeout = root, json_out, timeout


@app.command()
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


@app.command()
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
    # Not running. Its leftover task processes (a kill -9) were stopped now, if any.
    note = f" (removed stale {', '.join(done.cleaned)})" if done.cleaned else ""
    lines = [f"aiwgd is not running{note}"]
    data = {"stopped": False, "running": False, "cleaned": list(done.cleaned), "left": []}
    if done.left:
        lines.append(leftovers.stopped_line(done.left))
        data["left"] = leftovers.stop_report(done.left)
    emit(data, want_json(json_out), "\n".join(lines))
    if done.left and done.left.survivors:
        n = len(done.left.survivors)
        raise CtlError(f"{n} task process{'es' if n > 1 else ''} still running after SIGKILL")


@app.command()
def restart(root: Root = None, json_out: Json = False) -> None:
    """Stop (if running), then start detached."""
    paths = paths_for(root)
    daemonctl.stop(paths)
    pid = daemonctl.start_detached(paths)
    emit({"started": True, "pid": pid}, want_json(json_out), f"aiwgd restarted (PID {pid})")


@app.command()
def status(root: Root = None, json_out: Json = False) -> None:
    """Show pid, uptime, config state and subsystems (exit 0 running, 3 not running)."""
    raise typer.Exit(fastpath.status(root or Opts.root, want_json(json_out), quick_timeout()))


@app.command()
def ping(root: Root = None, json_out: Json = False) -> None:
    """Check that the daemon answers."""
    fastpath.ping(root or Opts.root, want_json(json_out), quick_timeout())


@app.command()
def logs(
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="lines to show")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="keep printing new lines")] = False,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Show the daemon log (readable form; --json prints the raw JSON lines)."""
    render.show_log(paths_for(root).log_file, lines, follow, want_json(json_out))


@app.command()
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


@config_app.command("validate")
def config_validate(
    file: Annotated[str | None, typer.Argument(help="default: .aiwg/daemon.json")] = None,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Check a config file; lists every error (exit 1 if any)."""
    from pathlib import Path

    from aiwgd.config import ValidationError, load_file

    path = Path(file) if file else paths_for(root).config_file
    try:
        load_file(path)
    except ValidationError as exc:
        issues = [str(i) for i in exc.issues]
        if want_json(json_out):
            emit({"valid": False, "file": str(path), "errors": issues}, True)
        else:
            for issue in issues:
                typer.echo(
                    f"{path}: {issue}" if not issue.startswith(str(path)) else issue, err=True
                )
        raise typer.Exit(EXIT_ERROR) from None
    emit({"valid": True, "file": str(path)}, want_json(json_out), f"{path}: valid")


@config_app.command("show")
def config_show(root: Root = None, json_out: Json = False) -> None:
    """Print the effective config (file merged over defaults) as JSON."""
    from aiwgd.config import ValidationError, defaults, load_file, to_json

    path = paths_for(root).config_file
    try:
        cfg = load_file(path) if path.exists() else defaults()
    except ValidationError as exc:
        text = str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}"
        raise CtlError(text) from None
    typer.echo(to_json(cfg), nl=False)


@config_app.command("init")
def config_init(
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Write the default config to .aiwg/daemon.json."""
    from aiwgd.config import defaults, to_json
    from aiwgd.infra.durable import write_atomic

    path = paths_for(root).config_file
    if path.exists() and not force:
        raise CtlError(f"{path} already exists; use --force to overwrite it")
    write_atomic(path, to_json(defaults()))
    emit({"written": str(path)}, want_json(json_out), f"wrote {path}")


def _register_extensions() -> None:
    # Command groups of later capabilities live in their own modules.
    from aiwgd.cli import commands

    commands.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn every failure into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    shell = completion.named_shell(args)
    if shell is not None:
        return completion.run(args[0], shell)
    _register_extensions()
    try:
        rv = app(args=args, prog_name="aiwg", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except KeyboardInterrupt:  # typer 0.2x turns Ctrl-C into Exit(130) itself; older ones not
        return EXIT_INTERRUPTED
    except UsageError as exc:
        typer.echo(f"aiwg: {exc}", err=True)
        return EXIT_USAGE
    except DaemonNotRunning as exc:
        typer.echo(f"aiwg: {exc}", err=True)
        return EXIT_NOT_RUNNING
    except RpcError as exc:
        typer.echo(f"aiwg: error {exc.code}: {exc.describe()}", err=True)
        return fastpath.rpc_exit_code(exc.code)
    except TimeoutError as exc:
        typer.echo(f"aiwg: {fastpath.timed_out(exc)}", err=True)
        return EXIT_ERROR
    except (CtlError, ClientError, RootError, OSError) as exc:
        typer.echo(f"aiwg: {exc}", err=True)
        return EXIT_ERROR
    except Exception as exc:  # click's usage errors and anything unforeseen
        return _other(exc)
    return rv if isinstance(rv, int) else 0


def _other(exc: Exception) -> int:
    if isinstance(exc, typer.Abort):
        if isinstance(exc.__context__, KeyboardInterrupt):  # click's form of Ctrl-C
            return EXIT_INTERRUPTED
        typer.echo("aiwg: aborted", err=True)
        return EXIT_ERROR
    show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
    if callable(show) and isinstance(code, int):
        show()  # click's usage errors print themselves (exit 2)
        return code
    typer.echo(f"aiwg: unexpected error: {type(exc).__name__}: {exc}", err=True)
    return EXIT_ERROR


def entry() -> None:
    sys.exit(main())
