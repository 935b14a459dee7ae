"""Task store benchmark: add latency vs. stored tasks, memory, start-up time.

    .venv/bin/python bench/store.py [--quick]

1. `store.add` p50/p99 (one awaited, fsynced add at a time) with 100, 10,000 and
   100,000 tasks already stored; the target is p50 at 100,000 <= 2x p50 at 100.
   Measured again while a background compaction of the whole store is running.
2. Store start-up (load tasks.json + replay the journal) and RSS with 100,000 tasks,
   in a fresh child process per size so figures do not mix.
3. The real daemon with 100,000 stored tasks: time to answer ping, RSS, and the
   `task.submit` p50 over RPC when the supervisor provides it.

Stored tasks are finished /bin/true-like commands and short prompts, written straight
into tasks.json (the format the store writes), so setting up 100,000 takes seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from aiwgd.config import Paths  # noqa: E402
from aiwgd.config.tasks import TasksSection  # noqa: E402
from aiwgd.tasks.model import IdGenerator, Task, TaskState  # noqa: E402
from aiwgd.tasks.store.journal import write_snapshot  # noqa: E402
from aiwgd.tasks.store.store import TaskStore  # noqa: E402

SIZES = (100, 10_000, 100_000)
CFG = {"max_finished": 1_000_000, "retention_days": 30}


def synthetic(n: int) -> list[dict[str, Any]]:
    gen = IdGenerator()
    now = time.time()
    out = []
    for i in range(n):
        t = Task(id=gen.new(), source="rpc" if i % 2 else "cli", created_at=now - 3600)
        if i % 4:
            t.command = ["/bin/true", f"arg-{i}"]
        else:
            t.prompt = f"fix the failing test number {i} in tests/test_thing.py and explain"
            t.agent = "coder"
        t.state = TaskState.COMPLETED
        t.started_at, t.finished_at = now - 3000, now - 2990
        t.exit_code, t.output_tail = 0, "ok\n"  # a finished task keeps no runner
        out.append(t.to_dict())
    return out


CREATED: list[Path] = []


def make_root(n: int, journal_entries: int = 0) -> Path:
    root = Path(tempfile.mkdtemp(prefix="aiwg-bench-", dir="/tmp"))
    CREATED.append(root)
    paths = Paths(root)
    paths.task_logs_dir.mkdir(parents=True)
    write_snapshot(paths.tasks_file, 0, synthetic(n))
    if journal_entries:
        gen = IdGenerator()
        gen.last = 10**13  # above the snapshot's ids
        with paths.tasks_journal.open("w") as fh:
            for seq in range(1, journal_entries + 1):
                t = Task(id=gen.new(), command=["/bin/true"])
                entry = {"seq": seq, "op": "add", "task": t.to_dict()}
                fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
    paths.config_file.write_text(
        json.dumps(
            {
                "watch": {"enabled": False, "paths": []},
                "schedule": {"enabled": False, "jobs": []},
                "tasks": CFG,
                "daemon": {"max_parallel_actions": 1, "stop_grace_seconds": 1},
            }
        )
    )
    return root


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def add_latencies(roots: list[Path], count: int) -> list[list[float]]:
    """Round-robin awaited adds over several stores, so machine noise hits all alike."""
    stores = [TaskStore(Paths(r), TasksSection(**CFG)) for r in roots]
    for store in stores:
        await store.start()
    lat: list[list[float]] = [[] for _ in stores]
    for _ in range(count):
        for i, store in enumerate(stores):
            t0 = time.perf_counter()
            await store.add(Task(id=store.new_id(), command=["/bin/true"]))
            lat[i].append(time.perf_counter() - t0)
    for store in stores:
        await store.stop()
    return lat


async def add_latencies_compacting(root: Path, count: int) -> tuple[list[float], int]:
    """Awaited adds while full rewrites of the store run back to back in the background."""
    store = TaskStore(Paths(root), TasksSection(**CFG))
    await store.start()

    async def churn() -> None:
        while True:
            await store.compact()

    bg = asyncio.create_task(churn())
    await asyncio.sleep(0.05)  # the first rewrite is under way
    lat = []
    while len(lat) < count or store.storelog.compactions < 2:
        t0 = time.perf_counter()
        await store.add(Task(id=store.new_id(), command=["/bin/true"]))
        lat.append(time.perf_counter() - t0)
    bg.cancel()
    compactions = store.storelog.compactions
    await store.stop()
    return lat, compactions


def child_load(root: str) -> None:
    """In a fresh process: start the store, print load time and RSS as JSON."""
    base = psutil.Process().memory_info().rss

    async def main() -> dict[str, float]:
        t0 = time.perf_counter()
        store = TaskStore(Paths(Path(root)), TasksSection(**CFG))
        await store.start()
        took = time.perf_counter() - t0
        rss = psutil.Process().memory_info().rss
        out = {
            "start_s": took,
            "rss_mb": rss / 2**20,
            "store_mb": (rss - base) / 2**20,
            "tasks": len(store),
            "replayed": store.recovery["replayed"],
        }
        await store.storelog.journal.close()  # no final compaction: not what is measured
        return out

    print(json.dumps(asyncio.run(main())))


def measure_child(root: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child-load", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def daemon_figures(root: Path, submits: int) -> dict[str, Any]:
    from aiwgd.client import Client, ClientError

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("AIWG_ROOT", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiwgd", "--root", str(root)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=root,
    )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"aiwgd exited {proc.returncode}")
            try:
                with Client(root, timeout=2) as c:
                    if c.call("ping") == "pong":
                        break
            except ClientError:
                time.sleep(0.01)
        ready = time.perf_counter() - t0
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        out: dict[str, Any] = {"ready_s": ready, "rss_mb": rss}
        with Client(root, timeout=30) as c:
            methods = c.call("rpc.discover") if submits else {}
            names = json.dumps(methods)
            if submits and '"task.submit"' in names:
                lat = []
                for i in range(submits):
                    t1 = time.perf_counter()
                    # Cap 1 and a long first task: the others stay queued, so the figure
                    # is the submit path itself, not task processes competing for the CPU.
                    c.call("task.submit", command=["sleep", "3600"], metadata={"i": i})
                    lat.append(time.perf_counter() - t1)
                out["submit_p50_ms"] = statistics.median(lat) * 1000
        return out
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    quick = "--quick" in sys.argv
    count = 300 if quick else 1000
    roots = {n: make_root(n) for n in SIZES}
    try:
        print(
            f"1. store.add latency ({count} awaited adds per size, one at a time, "
            "round-robin over the sizes; each fsynced)"
        )
        lats = asyncio.run(add_latencies(list(roots.values()), count))
        p50 = {}
        for n, lat in zip(roots, lats, strict=True):
            p50[n] = statistics.median(lat)
            print(
                f"   {n:>7} stored: p50 {p50[n] * 1e6:6.0f} us   p99 {pct(lat, 0.99) * 1e6:6.0f} us"
            )
        ratio = p50[SIZES[-1]] / p50[SIZES[0]]
        verdict = "OK" if ratio <= 2 else "OVER TARGET"
        print(f"   ratio p50 at 100,000 / p50 at 100 = {ratio:.2f}  (target <= 2.00: {verdict})")
        lat, done = asyncio.run(add_latencies_compacting(roots[SIZES[-1]], count // 2))
        print(
            f"   100,000 stored, {done} full compactions during {len(lat)} adds: "
            f"p50 {statistics.median(lat) * 1e6:6.0f} us   p99 {pct(lat, 0.99) * 1e6:6.0f} us"
        )

        print("2. store start-up (load + replay) and RSS, fresh process each")
        for n in SIZES:
            r = measure_child(make_root(n))
            print(
                f"   {n:>7} tasks: start {r['start_s'] * 1000:7.0f} ms   process RSS "
                f"{r['rss_mb']:6.1f} MiB (store {r['store_mb']:6.1f} MiB)"
            )
        jroot = make_root(SIZES[-1], journal_entries=10_000)
        r = measure_child(jroot)
        print(
            f"   100,000 tasks + 10,000 journal entries to replay: start "
            f"{r['start_s'] * 1000:.0f} ms ({r['replayed']:.0f} replayed)"
        )

        print("3. the real daemon (task.submit: 300 calls, one at a time, over one connection)")
        figures = {}
        for n in (SIZES[0], SIZES[-1]):
            d = figures[n] = daemon_figures(make_root(n), submits=0 if quick else 300)
            line = (
                f"   {n:>7} stored tasks: ready in {d['ready_s'] * 1000:6.0f} ms, "
                f"RSS {d['rss_mb']:6.1f} MiB"
            )
            if "submit_p50_ms" in d:
                line += f", task.submit p50 {d['submit_p50_ms']:.2f} ms"
            print(line)
        if all("submit_p50_ms" in d for d in figures.values()):
            r = figures[SIZES[-1]]["submit_p50_ms"] / figures[SIZES[0]]["submit_p50_ms"]
            verdict = "OK" if r <= 2 else "OVER TARGET"
            print(f"   task.submit p50 ratio 100,000 / 100 = {r:.2f}  (target <= 2.00: {verdict})")
    finally:
        for root in CREATED:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child-load":
        child_load(sys.argv[2])
    else:
        main()
