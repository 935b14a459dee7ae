"""What the CLI tests of issue 8 share: `aiwg` as a user runs it, and its one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from aiwgd.cli.daemonctl import lock_held, running_pid
from aiwgd.config.paths import Paths
from tests.utils import REPO, env_for_tests, wait_for


def aiwg(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`aiwg ARGS` as a subprocess entering through the console script's fast path."""
    return subprocess.run(
        [sys.executable, "-m", "aiwgd.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or env_for_tests(),
        cwd=cwd or REPO,
        stdin=subprocess.DEVNULL,
    )


def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    """The error a user sees: exactly one line on stderr, never a traceback."""
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("aiwg: "), lines
    return lines[0]


def kill_detached(root: Path) -> None:
    """SIGKILL a detached daemon a test started in `root` (if any) and wait until it is gone."""
    paths = Paths(root)
    pid = running_pid(paths)
    if pid and pid > 0:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not lock_held(paths), 10, "the detached daemon to die")
