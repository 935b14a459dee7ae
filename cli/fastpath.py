"""The `aiwg` entry point: `status`, `ping` and `config show` answered without typer.

Scripts, shell prompts and health checks call `aiwg status` and `aiwg ping` in loops.
Importing typer alone costs about as much as the round trip to the daemon (the other
commands pay that, and only that: cli/lazy.py, cli/quickparse.py). These commands take
only `--root DIR`, `--json` and the global `--timeout`, so a plain argv match recognises
them; `status()`, `ping()` and `config_show()` here are their one implementation, which
the typer commands in cli/daemon.py and cli/config.py call too. Anything else (other
commands, --help, an unknown or misspelled option) goes to typer, which stays the one
definition of the CLI; tests/cli/test_fastpath.py checks both paths print the same bytes
and exit with the same codes.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

# The exit codes of every command (cli/options.py re-exports them; click's usage errors
# exit 2 as ours do); 130 is the shell's code for a program ended by Ctrl-C (128 + SIGINT).
EXIT_ERROR, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_INTERRUPTED = 1, 2, 3, 130
# The daemon refused the params the command line gave (a bad --priority, a bad RPC param):
# the same mistake as a bad option, so the same exit code.
INVALID_PARAMS = -32602
HOT = ("status", "ping")
CONFIG_SHOW = "config show"  # the one hot command of two words, given next to each other
# How long a quick call waits for the daemon's answer unless `aiwg --timeout S` says:
# long enough for a busy daemon, short enough that a person sees a stopped one at once.
QUICK_TIMEOUT_S = 5.0
TIMEOUT_RANGE = (0.01, 86_400.0)  # what `--timeout` accepts (cli/main.py: the typer option)


class Hot(NamedTuple):
    command: str
    root: str | None
    json: bool
    timeout: float | None  # `aiwg --timeout S`; None: QUICK_TIMEOUT_S


def _seconds(text: str | None) -> float | None:
    """The value of --timeout as typer would take it, or None (typer gives the usage error)."""
    try:
        value = float(text or "")
    except ValueError:
        return None
    low, high = TIMEOUT_RANGE
    return value if low <= value <= high else None


def parse(argv: list[str]) -> Hot | None:
    """The hot command when argv is exactly one; None: ask typer."""
    command, root, as_json, timeout = None, None, False, None
    args = iter(argv)
    for arg in args:
        if arg == "--json":
            as_json = True
        elif arg == "--root":
            root = next(args, None)
            if root is None or root.startswith("-"):
                return None  # typer gives the usage error
        elif arg.startswith("--root="):
            root = arg.removeprefix("--root=")
        elif command is None and (arg == "--timeout" or arg.startswith("--timeout=")):
            # A global option only (`aiwg --timeout 2 ping`): typer has it on no command.
            value = next(args, None) if arg == "--timeout" else arg.partition("=")[2]
            timeout = _seconds(value)
            if timeout is None:
                return None
        elif arg in HOT and command is None:
            command = arg
        elif arg == "config" and command is None:
            if next(args, None) != "show":
                return None
            command = CONFIG_SHOW
        else:
            return None
    return None if command is None else Hot(command, root, as_json, timeout)


def _emit(data: Any, as_json: bool, human: str) -> None:
    # Same output as cli.options.emit gives the other commands (typer.echo is print + newline).
    print(json.dumps(data, indent=2, default=str) if as_json else human)


def status(root: str | None, as_json: bool, timeout: float = QUICK_TIMEOUT_S) -> int:
    """`aiwg status`: print it; the exit code is 0 running, 3 not running."""
    from aiwgd.cli import daemonctl, render
    from aiwgd.config.paths import Paths, resolve_root

    code, info = daemonctl.status(Paths(resolve_root(root, check=True)), timeout)
    _emit(info, as_json, "" if as_json else render.status(info, render.width()))
    return code


def ping(root: str | None, as_json: bool, timeout: float = QUICK_TIMEOUT_S) -> int:
    """`aiwg ping`: print the answer and the round trip time."""
    from aiwgd.client import Client
    from aiwgd.config.paths import Paths, resolve_root

    t0 = time.perf_counter()
    with Client(Paths(resolve_root(root, check=True)).root, timeout=timeout) as c:
        result = c.call("ping")
    ms = (time.perf_counter() - t0) * 1000
    _emit({"result": result, "ms": round(ms, 3)}, as_json, f"{result} ({ms:.1f} ms)")
    return 0


def config_show(root: str | None, as_json: bool = False, timeout: float = 0.0) -> int:
    """`aiwg config show`: the effective config (file merged over defaults) as JSON,
    whatever --json says."""
    from aiwgd.cli.daemonctl import CtlError
    from aiwgd.config import ValidationError, defaults, load_file, to_json
    from aiwgd.config.paths import Paths, resolve_root

    path = Paths(resolve_root(root, check=True)).config_file
    try:
        cfg = load_file(path) if path.exists() else defaults()
    except ValidationError as exc:
        text = str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}"
        raise CtlError(text) from None
    sys.stdout.write(to_json(cfg))
    return 0


def _guarded(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except Exception as exc:
        code = failure(exc)
        if code is None:
            raise
        return code


def failure(exc: BaseException) -> int | None:
    """For an error any command may end with (the daemon's, the client's, the project's):
    print its one line on stderr and give the exit code. None: not one of those."""
    from aiwgd.cli.daemonctl import CtlError
    from aiwgd.client import ClientError, DaemonNotRunning, RpcError
    from aiwgd.config.paths import RootError

    if isinstance(exc, DaemonNotRunning):
        line, code = str(exc), EXIT_NOT_RUNNING
    elif isinstance(exc, RpcError):
        line, code = f"error {exc.code}: {exc.describe()}", rpc_exit_code(exc.code)
    elif isinstance(exc, TimeoutError):  # an OSError too: first
        line, code = timed_out(exc), EXIT_ERROR
    elif isinstance(exc, (CtlError, ClientError, RootError, OSError)):
        line, code = str(exc), EXIT_ERROR
    else:
        return None
    print(f"aiwg: {line}", file=sys.stderr)
    return code


def rpc_exit_code(code: int) -> int:
    """The exit code for a JSON-RPC error answer: 2 for refused params, else 1."""
    return EXIT_USAGE if code == INVALID_PARAMS else EXIT_ERROR


def timed_out(exc: TimeoutError) -> str:
    """A timeout's line for a person: what did not answer, and how to wait longer."""
    return f"{exc} (stopped or overloaded? `aiwg --timeout SECONDS` waits longer)"


def run(argv: list[str]) -> int | None:
    """Run a hot command and return its exit code, or None when typer must handle argv."""
    hot = parse(argv)
    if hot is None:
        return None
    fn = {"status": status, "ping": ping, CONFIG_SHOW: config_show}[hot.command]
    timeout = QUICK_TIMEOUT_S if hot.timeout is None else hot.timeout
    return _guarded(lambda: fn(hot.root, hot.json, timeout))


def entry() -> None:
    """Console script `aiwg`."""
    # Start-up allocates some 100k objects (typer's modules, ours) that live until the
    # exit: the cyclic collector would walk them again and again while they load and
    # once more at exit, ~10 ms of a command's ~60. It is off while they load, then they
    # are frozen (never walked again); a command that runs long (a follow, `start
    # --foreground`) has it on for everything it allocates itself.
    gc.disable()
    try:
        code = run(sys.argv[1:])
        if code is None:
            from aiwgd.cli.main import main

            gc.freeze()
            gc.enable()
            code = main()
    except KeyboardInterrupt:  # Ctrl-C anywhere, even while Python imports typer
        code = EXIT_INTERRUPTED
    finally:
        gc.freeze()
    sys.exit(code)
