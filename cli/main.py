"""`aiwg`: the thin command-line client. Talks to the daemon only over its socket.

Exit codes: 0 ok, 1 error (one line on stderr), 2 usage (a bad option or argument, or
params the daemon refuses), 3 daemon not running, 130 interrupted (Ctrl-C).

The app here has the global options only; its commands live in the modules
cli/commands.py names, and the root group (cli/lazy.py) imports and builds just the
one argv names.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from aiwgd.cli import commands, completion, fastpath
from aiwgd.cli.lazy import ModuleGroup
from aiwgd.cli.options import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Json,
    Opts,
    QuickTimeout,
    Root,
    UsageError,
)

try:  # typer internals: without them typer parses as it always did (cli/quickparse.py)
    from aiwgd.cli import quickparse
except ImportError:  # pragma: no cover - another typer
    quickparse = None  # type: ignore[assignment]


class AiwgGroup(ModuleGroup):
    where = commands.WHERE


app = typer.Typer(
    cls=AiwgGroup,
    # --install-completion / --show-completion for the shell that runs aiwg;
    # `aiwg --show-completion bash` (a shell named) is answered in main().
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="aiwg: control the aiwgd automation daemon.",
)


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


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn every failure into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    shell = completion.named_shell(args)
    if shell is not None:
        return completion.run(args[0], shell)
    if quickparse is not None:
        quickparse.install()
    try:
        rv = app(args=args, prog_name="aiwg", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except KeyboardInterrupt:  # typer 0.2x turns Ctrl-C into Exit(130) itself; older ones not
        return EXIT_INTERRUPTED
    except UsageError as exc:
        typer.echo(f"aiwg: {exc}", err=True)
        return EXIT_USAGE
    except Exception as exc:
        code = fastpath.failure(exc)  # the daemon's, the client's and the project's errors
        return _other(exc) if code is None else code
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
