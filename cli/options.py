"""What every `aiwg` command shares: the --root/--json options, the client, output, exit codes.

main.py and each command-group module (tasks, events, schedule, automation) import from
here; none of them imports main.py, which only assembles the app.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

# fastpath.py answers `status` and `ping` without typer, so the codes live there.
from aiwgd.cli.fastpath import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_RUNNING,
    EXIT_USAGE,
    QUICK_TIMEOUT_S,
    TIMEOUT_RANGE,
)
from aiwgd.config.paths import Paths, resolve_root

if TYPE_CHECKING:
    from aiwgd.client import Client

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_RUNNING",
    "EXIT_USAGE",
    "Json",
    "Opts",
    "QuickTimeout",
    "Root",
    "UsageError",
    "client",
    "emit",
    "json_object_arg",
    "paths_for",
    "quick_timeout",
    "want_json",
]

Root = Annotated[
    str | None,
    typer.Option(
        "--root", help="project root (default $AIWG_ROOT, else the nearest dir with .aiwg/)"
    ),
]
Json = Annotated[bool, typer.Option("--json", help="machine-readable JSON output")]
QuickTimeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        min=TIMEOUT_RANGE[0],
        max=TIMEOUT_RANGE[1],
        metavar="SECONDS",
        help=f"wait this long for the daemon's answer (default {QUICK_TIMEOUT_S:g}); "
        "follows and waits (-f, task wait) last as long as what they follow",
    ),
]


class UsageError(Exception):
    """A mistake on the command line that click cannot see (a param's form): exit 2."""


class Opts:
    """Global options (`aiwg --json --root DIR CMD`); per-command ones override them."""

    root: str | None = None
    json: bool = False
    timeout: float | None = None  # `aiwg --timeout S` (a global option only)


def paths_for(root: str | None) -> Paths:
    """The project's paths: this command's --root, else the global one, else the default.

    A root named by --root or $AIWG_ROOT must be a directory (RootError otherwise).
    """
    return Paths(resolve_root(root or Opts.root, check=True))


def want_json(flag: bool) -> bool:
    """JSON output if this command's --json or the global one asks for it."""
    return flag or Opts.json


def emit(data: Any, as_json: bool, human: str | None = None) -> None:
    """Print `data` as indented JSON, or the human-readable line(s) if there are any."""
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    elif human is not None:
        typer.echo(human)


def quick_timeout() -> float:
    """Seconds a quick call waits for the daemon: `aiwg --timeout S`, else the default."""
    return QUICK_TIMEOUT_S if Opts.timeout is None else Opts.timeout


def client(root: str | None, timeout: float | Literal["quick"] | None = "quick") -> Client:
    """A client for the daemon of the project at `root` (not yet connected).

    A quick call gives up after quick_timeout(); a long call passes its own limit in
    seconds, or None to wait as long as what it follows lasts (logs -f, events -f).
    """
    from aiwgd.client import Client  # here: `aiwg --help` and `config` talk to no daemon

    return Client(paths_for(root).root, timeout=quick_timeout() if timeout == "quick" else timeout)


def json_object_arg(text: str, name: str, must_be: str = "a JSON object") -> dict[str, Any]:
    """Parse command-line argument `name`, which must hold a JSON object (UsageError if not)."""
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise UsageError(f"{name} must be {must_be}")
    return parsed
