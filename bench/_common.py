"""Helpers shared by the benchmark scripts (not a benchmark: `make bench` skips `_*.py`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiwgd.client import ClientError


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


REPO = Path(__file__).resolve().parent.parent


def spawn_daemon(root: Path, cwd: Path = REPO) -> subprocess.Popen[bytes]:
    """`aiwgd` on `root` in the background, from this checkout, its output discarded."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("AIWG_ROOT", None)  # --root decides, whatever the caller's shell says
    return subprocess.Popen(
        [sys.executable, "-m", "aiwgd", "--root", str(root), "--no-stderr-log"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy (a daemon not answering yet counts as not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except ClientError:
            pass
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of `pid` so far, from the scheduler's own count
    (/proc/PID/task/TID/schedstat) to the ns; psutil counts 10 ms clock ticks."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except OSError:
            continue  # the thread ended meanwhile
    return total
