"""`aiwg status`, `aiwg ping` and `aiwg config show` answered without typer
(cli/fastpath.py): the same bytes and exit codes as the typer commands, and nothing heavy
loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.utils import REPO, DaemonProc, env_for_tests, run_python, wait_for


def aiwg(root: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    """The way the console script runs: `python -m aiwgd.cli` enters through the fast path."""
    cmd = [sys.executable, "-m", "aiwgd.cli", *(["--root", str(root)] if root else []), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=60, env=env_for_tests(), cwd=REPO
    )


_VIA_TYPER = "import sys, aiwgd.cli.main as m; sys.exit(m.main(sys.argv[1:]))"


def via_typer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _VIA_TYPER, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_for_tests(),
    )


def test_fast_path_matches_typer(daemon: DaemonProc, tmp_path: Path) -> None:
    root = str(daemon.root)
    bad = tmp_path / "bad"  # a project whose config has an error
    (bad / ".aiwg").mkdir(parents=True)
    (bad / ".aiwg" / "daemon.json").write_text('{"daemon": {"max_parallel_actions": 0}}')
    # The event log writes daemon.started in a batch after start-up: let it settle, so
    # both status calls see the same counters.
    wait_for(lambda: daemon.call("daemon.status")["subsystems"]["events"]["log"]["backlog"] == 0)
    for args in (
        ["--json", "status", "--root", root],
        [f"--root={root}", "status", "--json"],
        ["status", "--root", str(tmp_path)],
        ["--json", "--root", str(tmp_path), "status"],
        ["ping", "--root", str(tmp_path)],
        ["config", "show", "--root", root],
        ["--root", str(tmp_path), "--json", "config", "show"],
        ["config", "show", f"--root={bad}"],
    ):
        fast, slow = aiwg(None, *args), via_typer(*args)
        assert (fast.returncode, fast.stderr) == (slow.returncode, slow.stderr), args
        if "status" in args and "--json" in args and fast.returncode == 0:  # uptime moves
            a, b = json.loads(fast.stdout), json.loads(slow.stdout)
            assert a.pop("uptime_s") <= b.pop("uptime_s") and a == b, args
        else:
            assert fast.stdout == slow.stdout, args
    human = aiwg(daemon.root, "status").stdout.splitlines()
    assert human[1:] == via_typer("--root", root, "status").stdout.splitlines()[1:]
    fast, slow = aiwg(daemon.root, "ping", "--json"), via_typer("--root", root, "ping", "--json")
    assert json.loads(fast.stdout).keys() == json.loads(slow.stdout).keys() == {"result", "ms"}


def test_fast_path_loads_no_typer(daemon: DaemonProc) -> None:
    code = (
        "import sys; from aiwgd.cli import fastpath; "
        f"rc = fastpath.run(['--root', {str(daemon.root)!r}, 'status']); "
        "print(rc, sorted(m for m in ('typer', 'pydantic', 'aiwgd.config.model') "
        "if m in sys.modules))"
    )
    out = run_python(code, timeout=30)
    assert out.stdout.splitlines()[-1] == "0 []", out


def test_fast_path_hands_everything_else_to_typer() -> None:
    from aiwgd.cli.fastpath import parse

    assert parse(["status"]) == ("status", None, False, None)
    assert parse(["--root", "/x", "ping", "--json"]) == ("ping", "/x", True, None)
    assert parse(["--timeout", "2", "ping"]) == ("ping", None, False, 2.0)
    assert parse(["config", "show", "--root", "/x"]) == ("config show", "/x", False, None)
    for argv in (
        [],
        ["status", "--help"],
        ["status", "-h"],
        ["status", "ping"],
        ["stop"],
        ["status", "--root"],
        ["--jsn", "status"],
        ["status", "extra"],
        ["config"],
        ["config", "validate"],
        ["config", "--json", "show"],
        ["show"],
        ["config", "show", "status"],
    ):
        assert parse(argv) is None, argv
