"""CLI benchmark: what each `aiwg` command costs a person or a script, against `aiwg ping`.

    .venv/bin/python bench/cli.py [--quick]

1. Wall time of `aiwg ping` (the baseline: the cheapest round trip the CLI makes) and,
   side by side in the same rounds, of `aiwg status`, `aiwg task list`,
   `aiwg task run -- true` (queues a command task), `aiwg events`, `aiwg config show`
   and `aiwg --help`, against one idle daemon in a temp dir: the median of 20 rounds
   (5 with --quick), each round running every command once in turn (starting one
   later each round) so load from elsewhere on the machine hits all of them alike.
   Target: every command <= 2x ping.
2. `aiwg stop` with nothing running: from launching it to the daemon having exited
   (its process handle, a pidfd where Linux has one, not `kill -0`, which counts an
   unreaped zombie as alive) and to `aiwg stop` returning; median of 10 fresh daemons
   (3 with --quick). Target: returned, with the daemon gone, within 150 ms.

The commands run with their bytecode cached (in a temp dir, PYTHONPYCACHEPREFIX), as
after `pip install`: a shell with PYTHONDONTWRITEBYTECODE=1 and no cache would
otherwise compile the CLI's modules on every run and measure the compiler.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiwgd.client import Client  # noqa: E402
from bench.rpc import BIN, start_daemon  # noqa: E402

RATIO_TARGET = 2.0
STOP_TARGET_MS = 150.0
# name shown, argv after `aiwg --root ROOT`; ping first: the others are measured against it
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ping", ("ping",)),
    ("status", ("status",)),
    ("task list", ("task", "list")),
    ("task run -- true", ("task", "run", "--", "true")),
    ("events", ("events",)),
    ("config show", ("config", "show")),
    ("--help", ("--help",)),
)


def cli_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    env.pop("AIWG_ROOT", None)
    return env


def run_once(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=60, env=env)
    return time.perf_counter() - t0


def command_medians(root: Path, env: dict[str, str], rounds: int) -> dict[str, float]:
    argvs = {name: [str(BIN / "aiwg"), "--root", str(root), *args] for name, args in COMMANDS}
    for argv in argvs.values():  # warm-up: writes the bytecode cache, warms the page cache
        run_once(argv, env)
    times: dict[str, list[float]] = {name: [] for name in argvs}
    names = list(argvs)
    for r in range(rounds):
        # Each round starts one command later: none always runs first, or after the same one.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(run_once(argvs[name], env))
    return {name: statistics.median(t) for name, t in times.items()}


def _exit_waiter(pid: int) -> int | None:
    """A pidfd that becomes readable when `pid` exits (None where Linux has none)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def stop_once(tmp: Path, i: int, env: dict[str, str]) -> tuple[float, float]:
    """(ms to the daemon's exit, ms to `aiwg stop` returning) for one fresh idle daemon."""
    root = tmp / f"stop{i}"
    root.mkdir()
    daemon = start_daemon(root)
    try:
        with Client(root, timeout=10) as c:  # up and answering: nothing left starting
            c.call("ping")
        t0 = time.perf_counter()
        stop = subprocess.Popen(
            [str(BIN / "aiwg"), "--root", str(root), "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        done = exit_times({"daemon": daemon, "stop": stop})
        if stop.wait(60) != 0:
            raise SystemExit(f"aiwg stop failed (exit {stop.returncode})")
    finally:
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait(30)
    return (done["daemon"] - t0) * 1000, (done["stop"] - t0) * 1000


def exit_times(procs: dict[str, subprocess.Popen[bytes]]) -> dict[str, float]:
    """When each of our children exited (perf_counter), each woken at its exit."""
    fds = {name: _exit_waiter(p.pid) for name, p in procs.items()}
    done: dict[str, float] = {}
    if None in fds.values():  # no pidfd: in the order they end, a blocking wait is exact
        for name, p in procs.items():
            p.wait()
            done[name] = time.perf_counter()
        return done
    poller = select.poll()
    names = {fd: name for name, fd in fds.items() if fd is not None}
    for fd in names:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + 60
    while len(done) < len(procs) and time.monotonic() < deadline:
        for fd, _ in poller.poll(1000):
            done.setdefault(names[fd], time.perf_counter())
            poller.unregister(fd)
    for fd in names:
        os.close(fd)
    if len(done) < len(procs):
        raise SystemExit(f"timed out waiting for {sorted(procs.keys() - done.keys())} to exit")
    return done


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report_commands(tmp: Path, env: dict[str, str], rounds: int) -> None:
    root = tmp / "proj"
    root.mkdir()
    daemon = start_daemon(root)
    try:
        medians = command_medians(root, env, rounds)
    finally:
        daemon.terminate()
        daemon.wait(30)
    ping = medians["ping"]
    print(f"CLI wall time, median of {rounds} rounds (python {sys.version.split()[0]})")
    print(f"  aiwg {'ping':<18} {ping * 1000:6.1f} ms  (the baseline)")
    for name, _ in COMMANDS[1:]:
        ratio = medians[name] / ping
        print(
            f"  aiwg {name:<18} {medians[name] * 1000:6.1f} ms  {ratio:4.2f}x ping  "
            f"(target <= {RATIO_TARGET:g}x: {verdict(ratio <= RATIO_TARGET)})"
        )


def report_stop(tmp: Path, env: dict[str, str], stops: int) -> None:
    results = [stop_once(tmp, i, env) for i in range(stops)]
    gone = statistics.median(r[0] for r in results)
    back = statistics.median(r[1] for r in results)
    print(f"aiwg stop with nothing running, median of {stops} fresh daemons")
    print(
        f"  daemon exited {gone:6.1f} ms, `aiwg stop` returned {back:6.1f} ms after launch  "
        f"(target <= {STOP_TARGET_MS:g} ms: {verdict(max(gone, back) <= STOP_TARGET_MS)})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run for smoke use")
    args = ap.parse_args()
    rounds, stops = (5, 3) if args.quick else (20, 10)
    tmp = Path(tempfile.mkdtemp(prefix="aiwg-bench-", dir="/tmp"))
    env = cli_env(tmp / "pycache")
    try:
        report_commands(tmp, env, rounds)
        report_stop(tmp, env, stops)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
