"""Task benchmark: the supervisor against a bare asyncio spawner, and the store at scale.

    .venv/bin/python bench/tasks.py [--quick] [--runs N] [--caps 1,4,16]
        [--throughput-only] [--repo PATH]

1. Throughput: 2,000 `/bin/true` command tasks submitted over RPC (batches of 50 on
   one connection) to a fresh daemon at caps 1, 4 and 16, timed from the first submit
   to the last task terminal; right before each, a bare asyncio loop spawning the same
   process the same way (own session, stdout+stderr piped and drained) under a
   semaphore of the same size. Each cap is measured `--runs` times (5; 1 with
   --quick) and reported as medians, with the median of the per-run ratios (each
   daemon run against the bare run just before it, so load from elsewhere on the
   machine hits both alike). Target: >= 75% of the bare loop at cap 4.
   CPU per task: the daemon process's user + system CPU time (all its threads, not
   its children) over the timed phase, divided by the tasks; beside it the bare
   spawner's own CPU per task, measured the same way in this process.
2. `task.submit` p50 latency over RPC (sequential, one connection) with 100, 10,000
   and 100,000 tasks already stored (the store pre-filled with its own snapshot
   writer). Target: at 100,000 no more than 2x the latency at 100.
3. With 100,000 stored tasks: the daemon's start-up time (spawn to first ping answer)
   and its RSS.

`--repo PATH` runs the daemon from another checkout (its .venv's python if it has
one), e.g. a worktree of an older commit, to measure before and after with the same
benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiwgd.client import Client, ClientError  # noqa: E402
from aiwgd.config.paths import Paths  # noqa: E402
from aiwgd.tasks.model import IdGenerator, Task, TaskState  # noqa: E402
from aiwgd.tasks.store.journal import write_snapshot  # noqa: E402

TRUE = shutil.which("true") or "/bin/true"


def _config(cap: int) -> dict[str, Any]:
    return {
        "watch": {"enabled": False, "paths": []},
        "schedule": {"enabled": False, "jobs": []},
        "daemon": {"max_parallel_actions": cap, "log": {"level": "warning"}},
        "tasks": {"max_finished": 1_000_000, "retention_days": 365},
    }


@dataclass
class Target:
    """Which checkout the daemon runs from, and with which interpreter."""

    repo: Path = REPO
    python: str = sys.executable

    @classmethod
    def at(cls, repo: Path) -> Target:
        venv = repo / ".venv" / "bin" / "python"
        return cls(repo, str(venv) if venv.exists() else sys.executable)


class Daemon:
    def __init__(self, cap: int, target: Target | None = None) -> None:
        self.target = target or Target()
        self.root = Path(tempfile.mkdtemp(prefix="aiwg-bench-", dir="/tmp"))
        self.paths = Paths(self.root)
        self.paths.aiwg_dir.mkdir(parents=True)
        self.paths.config_file.write_text(json.dumps(_config(cap)))
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0

    def start(self) -> Daemon:
        env = dict(os.environ, PYTHONPATH=str(self.target.repo))
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [self.target.python, "-m", "aiwgd", "--root", str(self.root), "--no-stderr-log"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=self.root,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"aiwgd exited {self.proc.returncode}")
            try:
                with Client(self.root, timeout=5) as c:
                    if c.call("ping") == "pong":
                        self.startup_s = time.perf_counter() - t0
                        return self
            except ClientError:
                time.sleep(0.01)
        raise RuntimeError("aiwgd did not answer in time")

    def process(self) -> psutil.Process:
        assert self.proc is not None
        return psutil.Process(self.proc.pid)

    def rss_mib(self) -> float:
        return float(self.process().memory_info().rss) / 2**20

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


# ---- 1. throughput -------------------------------------------------------------------


@dataclass
class Run:
    rate: float  # tasks a second
    cpu_ms: float  # CPU time a task, milliseconds


def _cpu_s(proc: psutil.Process) -> float:
    """User + system time of the process itself (all threads; children not included)."""
    t = proc.cpu_times()
    return float(t.user + t.system)


def daemon_throughput(cap: int, n: int, target: Target) -> Run:
    d = Daemon(cap, target).start()
    try:
        spec = {"command": [TRUE]}
        proc = d.process()
        with Client(d.root, timeout=120) as c:
            cpu0 = _cpu_s(proc)
            t0 = time.perf_counter()
            for start in range(0, n, 50):
                for r in c.batch([("task.submit", spec)] * min(50, n - start)):
                    if isinstance(r, Exception):
                        raise r
            # Wait on the last task (event-driven, not polling the daemon), then confirm.
            c.call("task.wait", id=r["id"], timeout_s=600)
            while True:
                stats = c.call("task.stats")
                done = sum(stats["counts"][s] for s in ("completed", "failed", "timed_out"))
                if done >= n:
                    break
                time.sleep(0.001)
            elapsed = time.perf_counter() - t0
            cpu = _cpu_s(proc) - cpu0
            if stats["counts"]["completed"] != n or stats["max_active"] > cap:
                raise RuntimeError(f"unexpected end state: {stats}")
    finally:
        d.stop()
    return Run(n / elapsed, cpu / n * 1000)


async def _bare(cap: int, n: int) -> float:
    sem = asyncio.Semaphore(cap)

    async def one() -> None:
        async with sem:
            proc = await asyncio.create_subprocess_exec(
                TRUE,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            assert proc.stdout is not None
            while await proc.stdout.read(65536):
                pass
            await proc.wait()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0)


def bare_throughput(cap: int, n: int) -> Run:
    me = psutil.Process()
    cpu0 = _cpu_s(me)
    rate = asyncio.run(_bare(cap, n))
    return Run(rate, (_cpu_s(me) - cpu0) / n * 1000)


def throughput(cap: int, n: int, runs: int, target: Target) -> None:
    ours: list[Run] = []
    bare: list[Run] = []
    for _ in range(runs):
        bare.append(bare_throughput(cap, n))
        ours.append(daemon_throughput(cap, n, target))
    ratios = [o.rate / b.rate for o, b in zip(ours, bare, strict=True)]
    mark = "  (target >= 75%)" if cap == 4 else ""
    med = statistics.median
    print(
        f"   cap {cap:>2}: aiwgd {med(o.rate for o in ours):7.1f} tasks/s   "
        f"bare asyncio {med(b.rate for b in bare):7.1f} /s   "
        f"ratio {med(ratios):6.1%}{mark}",
        flush=True,
    )
    print(
        f"           CPU a task: aiwgd {med(o.cpu_ms for o in ours):5.2f} ms   "
        f"bare {med(b.cpu_ms for b in bare):5.2f} ms",
        flush=True,
    )
    if runs > 1:
        print("           ratio per run: " + " ".join(f"{r:.1%}" for r in ratios), flush=True)


# ---- 2. submit latency with a big store ------------------------------------------------


def prefill(d: Daemon, count: int) -> None:
    """Write `count` finished tasks with the store's own snapshot writer."""
    gen = IdGenerator()
    now = time.time()
    root = str(d.root)

    def records() -> Any:
        for i in range(count):
            yield Task(
                id=gen.new(),
                state=TaskState.COMPLETED,
                command=[TRUE, str(i)],
                cwd=root,
                timeout_s=7200.0,
                created_at=now - 60,
                started_at=now - 59,
                finished_at=now - 58,
                exit_code=0,
                output_tail="",
            ).to_dict()

    d.paths.daemon_dir.mkdir(parents=True, exist_ok=True)
    write_snapshot(d.paths.tasks_file, 0, records())


def submit_latency(stored: int, samples: int, target: Target) -> dict[str, float]:
    d = Daemon(4, target)
    prefill(d, stored)
    d.start()
    try:
        out = {"startup_s": d.startup_s}
        with Client(d.root, timeout=60) as c:
            if c.call("task.stats")["stored"] != stored:
                raise RuntimeError("prefilled tasks were not all loaded")
            times = []
            for _ in range(samples):
                t0 = time.perf_counter()
                c.call("task.submit", command=[TRUE])
                times.append(time.perf_counter() - t0)
        out["p50_ms"] = statistics.median(times) * 1000
        out["p99_ms"] = sorted(times)[int(len(times) * 0.99) - 1] * 1000
        out["rss_mib"] = d.rss_mib()
    finally:
        d.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer tasks and runs (smoke run)")
    ap.add_argument("--runs", type=int, help="throughput runs per cap (default 5; quick 1)")
    ap.add_argument("--caps", default="1,4,16", help="caps to measure throughput at")
    ap.add_argument("--throughput-only", action="store_true", help="skip parts 2 and 3")
    ap.add_argument("--repo", type=Path, default=REPO, help="run the daemon from this checkout")
    args = ap.parse_args()
    n = 300 if args.quick else 2000
    runs = args.runs or (1 if args.quick else 5)
    samples = 100 if args.quick else 300
    big = 10_000 if args.quick else 100_000
    target = Target.at(args.repo.resolve())

    print(
        f"1. throughput: {n} x {TRUE}, end to end (submit over RPC -> all terminal), "
        f"median of {runs} run(s); daemon from {target.repo}"
    )
    for cap in (int(c) for c in args.caps.split(",")):
        throughput(cap, n, runs, target)
    if args.throughput_only:
        return
    print(f"2. task.submit latency over RPC ({samples} sequential submits)")
    results = {}
    for stored in sorted({100, 10_000, big}):  # --quick: big is 10,000 too
        r = results[stored] = submit_latency(stored, samples, target)
        line = (
            f"   {stored:>7} stored: p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
            f"start-up {r['startup_s']:5.2f} s  RSS {r['rss_mib']:6.1f} MiB"
        )
        print(line, flush=True)
    ratio = results[big]["p50_ms"] / results[100]["p50_ms"]
    print(f"   p50 at {big} / p50 at 100: {ratio:.2f}x (target <= 2x)")
    print(
        f"3. with {big} stored tasks: start-up {results[big]['startup_s']:.2f} s, "
        f"RSS {results[big]['rss_mib']:.1f} MiB "
        f"(vs {results[100]['startup_s']:.2f} s, {results[100]['rss_mib']:.1f} MiB with 100)"
    )


if __name__ == "__main__":
    main()
