"""What a task's git worktree costs: create and remove in a repository of many files.

Not a benchmark (`make bench` skips `_*.py`): bench/agents.py calls `measure()` and
prints its figures. The repository is built in a temporary directory (removed after)
with the machine's git configuration shut out, so only the checkout's size counts.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from aiwgd.agents.worktree import Worktrees

ROUNDS = 5
_ISOLATED = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), *args],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **_ISOLATED},
    )


def _build(root: Path, n_files: int) -> None:
    """n small files spread over directories of 100, one commit."""
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.name", "bench")
    _git(root, "config", "user.email", "bench@example.invalid")
    for i in range(n_files):
        where = root / "src" / f"d{i // 100:04d}"
        if i % 100 == 0:
            where.mkdir(parents=True)
        (where / f"f{i:06d}.py").write_text(f"VALUE = {i}\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "bench repository")


async def _rounds(root: Path) -> dict[str, list[float]]:
    wts = Worktrees(root)
    times: dict[str, list[float]] = {"create": [], "status": [], "diff": [], "remove": []}
    for i in range(ROUNDS):
        start = time.perf_counter()
        wt = await wts.create(f"bench{i}")
        times["create"].append(time.perf_counter() - start)
        # One edited file: status and diff still walk the whole checkout.
        Path(wt.path, "src", "d0000", "f000000.py").write_text("VALUE = -1\n")
        start = time.perf_counter()
        await wts.status(wt)
        times["status"].append(time.perf_counter() - start)
        start = time.perf_counter()
        await wts.diff(wt)
        times["diff"].append(time.perf_counter() - start)
        start = time.perf_counter()
        await wts.discard(wt, force=True)
        times["remove"].append(time.perf_counter() - start)
    return times


def measure(n_files: int = 10_000) -> dict[str, float]:
    """Median milliseconds over 5 rounds of create, status, diff and remove (discard
    with force) of one worktree, in a fresh repository of `n_files` files."""
    root = Path(tempfile.mkdtemp(prefix="aiwg-wtbench-"))
    saved = {key: os.environ.get(key) for key in _ISOLATED}
    os.environ.update(_ISOLATED)
    try:
        _build(root, n_files)
        times = asyncio.run(_rounds(root))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)
    figures: dict[str, float] = {"files": float(n_files)}
    for name, values in times.items():
        figures[f"{name}_ms"] = round(statistics.median(values) * 1000, 1)
    return figures


if __name__ == "__main__":
    for key, value in measure().items():
        print(f"{key:>12}: {value:g}")
