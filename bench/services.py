"""Services benchmark: aiwgd's service manager at scale against supervisord, PM2 and circus.

    .venv/bin/python bench/services.py [--quick] [--only aiwgd,supervisord,pm2,circus]

For N in (100, 500) (--quick: 20 and 50) each manager runs N programs `/bin/sleep 100000`
named in its own config file, one manager at a time, measured the same way in the same
run (peers from bench/_peers.py; PM2 and circus are installed under bench/.peers/ on
first use, and one that will not install or start is skipped with a line saying why):

1. Start-up: from starting the manager until its API reports all N running and the N
   sleeps exist (polled every 10 ms).
2. Idle: the manager's own process (not the sleeps; for PM2 the God Daemon), RSS at the
   end and CPU (user + system, all threads) over 60 s (--quick: 10 s), after a 2 s
   settle; aiwgd runs with `monitor.interval_s: 1`, sampling every sleep each second.
   Targets for aiwgd at N <= 100: under 2% of one core, under 60 MiB.
3. List: p50 of 20 sequential calls of the list API on one connection (aiwgd
   `service.list`; supervisord XML-RPC `getAllProcessInfo` over its unix socket; PM2
   `pm2.list` from a connected node driver; circus `status` over its endpoint on
   127.0.0.1). Target for aiwgd: under 10 ms at the largest N.
4. Stop-all: from the request (`service.stop all`, `stopAllProcesses`, `pm2.stop all`,
   circus `stop`) until every sleep's PID is gone (psutil). Target (issue 10): bounded
   by one grace period (the default stop_grace_s, 10 s), not N of them: aiwgd stops
   independent services together.
5. aiwgd only, restart after SIGKILL: kill one service's sleep, time until `service.get`
   shows a new PID running, minus the configured backoff (`initial_s` 0.05, no jitter);
   median of 10 kills, each of a different service (each its first restart). Target:
   under 50 ms beyond the backoff.

Peers' figures carry their ratio to aiwgd's (peer / aiwgd: above 1x is slower or
bigger than aiwgd). FAIL lines are printed; the script exits 0 so `make bench` goes on.
Everything runs in a temp dir under /tmp; the bench is a child subreaper and every
process it starts carries a mark in its environment, so at the end it kills whatever is
left (by process group) and checks that no `sleep 100000` of this run remains.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiwgd.client import Client, ClientError, RpcError  # noqa: E402
from bench._common import spawn_daemon  # noqa: E402
from bench._peers import (  # noqa: E402
    MARK,
    PEER_CLASSES,
    SLEEP_ARGV,
    Manager,
    Unavailable,
    is_sleep,
    sleeps_under,
)

SETTLE_S = 2.0
LIST_CALLS = 20
KILLS = 10
BACKOFF_S = 0.05
CPU_TARGET_PCT = 2.0
RSS_TARGET_MIB = 60.0
LIST_TARGET_MS = 10.0
STOP_TARGET_S = 10.0  # one grace period: the default stop_grace_s
RESTART_TARGET_MS = 50.0
UP = ("running", "ready")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def until(cond: Callable[[], bool], timeout: float, what: str, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise Unavailable(f"{what}: not within {timeout:g} s")
        time.sleep(every)


class Aiwgd(Manager):
    name = "aiwgd"
    note = "monitor.interval_s 1, backoff.initial_s 0.05 (jitter 0); watcher and scheduler off"

    def prepare(self) -> None:
        self.root = self.tmp / "proj"
        (self.root / ".aiwg").mkdir(parents=True)
        services = {
            f"s{i}": {"command": SLEEP_ARGV, "backoff": {"initial_s": BACKOFF_S, "jitter": 0}}
            for i in range(self.n)
        }
        config = {
            "watch": {"enabled": False, "paths": []},
            "schedule": {"enabled": False, "jobs": []},
            "daemon": {"log": {"level": "warning"}},
            "monitor": {"interval_s": 1},
            "services": services,
        }
        (self.root / ".aiwg" / "daemon.json").write_text(json.dumps(config))

    def launch(self) -> None:
        self.proc = spawn_daemon(self.root)

    def call(self, method: str, **params: Any) -> Any:
        with Client(self.root, timeout=30) as c:
            return c.call(method, **params)

    def running(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise Unavailable(
                f"aiwgd: the daemon exited with {self.proc.returncode} at start "
                "(is the services subsystem in this checkout?)"
            )
        try:
            reply = self.call("service.list")
        except RpcError as exc:
            raise Unavailable(f"aiwgd: service.list failed: {exc}") from None
        except ClientError:
            return 0  # not answering yet
        return sum(1 for inst in reply["services"] if inst["state"] in UP)

    def list_ms(self, calls: int) -> list[float]:
        out = []
        with Client(self.root, timeout=30) as c:
            for _ in range(calls):
                t0 = time.perf_counter()
                c.call("service.list")
                out.append((time.perf_counter() - t0) * 1000)
        return out

    def stop_all(self) -> None:
        with Client(self.root, timeout=600) as c:  # the reply waits for every ladder
            c.call("service.stop", name="all")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def restart_ms(self, kills: int) -> list[float]:
        """Per kill: SIGKILL to a running sleep -> a new PID running, minus the backoff."""
        out = []
        with Client(self.root, timeout=30) as c:
            for i in range(kills):
                name = f"s{i}"
                old, state = pid_state(c.call("service.get", name=name))
                if old is None or state not in UP:
                    raise Unavailable(f"aiwgd: {name} is {state}, not running, before the kill")
                t0 = time.perf_counter()
                os.kill(old, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while True:
                    pid, state = pid_state(c.call("service.get", name=name))
                    if pid not in (None, old) and state in UP:
                        break
                    if time.monotonic() > deadline:
                        raise Unavailable(f"aiwgd: {name} not running again 10 s after a kill")
                    time.sleep(0.001)
                out.append((time.perf_counter() - t0 - BACKOFF_S) * 1000)
        return out


def pid_state(reply: dict[str, Any]) -> tuple[int | None, str]:
    """(pid, state) of a one-instance service from its `service.get` reply."""
    inst: dict[str, Any] = reply["instances"][0]
    return inst["pid"], str(inst["state"])


# ---- one manager at one N ----------------------------------------------------------------


def alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def measure(mgr: Manager, idle_s: float) -> dict[str, Any]:
    n, out = mgr.n, {}
    mgr.prepare()
    t0 = time.perf_counter()
    mgr.launch()
    until(
        lambda: mgr.running() >= n and len(sleeps_under(mgr.pid())) >= n,
        60 + n * 0.5,
        f"{mgr.name}: all {n} running",
    )
    out["start_s"] = time.perf_counter() - t0
    sleeps = sleeps_under(mgr.pid())
    time.sleep(SETTLE_S)
    proc = psutil.Process(mgr.pid())
    c0 = proc.cpu_times()
    time.sleep(idle_s)
    c1 = proc.cpu_times()
    cpu_s = (c1.user + c1.system) - (c0.user + c0.system)
    out["cpu_pct"] = 100 * cpu_s / idle_s
    out["rss_mib"] = proc.memory_info().rss / 2**20
    out["list_ms"] = statistics.median(mgr.list_ms(LIST_CALLS))
    if isinstance(mgr, Aiwgd):
        out["restart_ms"] = statistics.median(mgr.restart_ms(min(KILLS, n)))
        sleeps = sleeps_under(mgr.pid())  # the restarted ones have new PIDs
    t0 = time.perf_counter()
    mgr.stop_all()
    left = sleeps
    deadline = time.monotonic() + 120
    while left:
        if time.monotonic() > deadline:
            raise Unavailable(f"{mgr.name}: {len(left)} sleeps still there 120 s after stop-all")
        time.sleep(0.005)
        left = [p for p in left if alive(p)]
    out["stop_s"] = time.perf_counter() - t0
    return out


# ---- cleanup: nothing of ours outlives the bench ---------------------------------------


def become_subreaper() -> None:
    """Orphans of the managers (PM2's detached daemon, escaped sleeps) reparent to us."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def marked(token: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        if p.pid == os.getpid():
            continue
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.environ().get(MARK) == token:
                out.append(p)
        except psutil.Error:
            continue
    return out


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def sweep(token: str) -> int:
    """Kill every process of this run left alive, group by group; return how many."""
    left = marked(token)
    own = os.getpgrp()
    for p in left:
        try:
            pgid = os.getpgid(p.pid)
            if pgid not in (own, 0, 1):
                os.killpg(pgid, signal.SIGKILL)
            p.kill()
        except (ProcessLookupError, psutil.Error):
            continue
    psutil.wait_procs(left, timeout=10)
    reap()
    return len(left)


# ---- the report --------------------------------------------------------------------------

ROWS = [  # key, label, format of one figure
    ("start_s", "start-up, all running", "{:.2f} s"),
    ("rss_mib", "RSS (manager only)", "{:.1f} MiB"),
    ("cpu_pct", "CPU idle (% of a core)", "{:.2f}%"),
    ("list_ms", f"list p50 ({LIST_CALLS} calls)", "{:.2f} ms"),
    ("stop_s", "stop-all, sleeps gone", "{:.3f} s"),
]


def report(n: int, results: dict[str, dict[str, Any]], largest: bool) -> None:
    base = results.get("aiwgd", {})
    print(f"\nN = {n}")
    for key, label, fmt in ROWS:
        parts = []
        for name, r in results.items():
            fig = f"{name} {fmt.format(r[key])}"
            if name != "aiwgd" and base.get(key):
                fig += f" ({r[key] / base[key]:.2f}x)"
            parts.append(fig)
        print(f"  {label:<24} " + ", ".join(parts))
    if not base:
        return
    print(
        f"  {'restart after SIGKILL':<24} aiwgd {base['restart_ms']:.1f} ms beyond the "
        f"{BACKOFF_S * 1000:.0f} ms backoff (median of {min(KILLS, n)})"
    )
    checks = [
        (f"restart < backoff + {RESTART_TARGET_MS:g} ms", base["restart_ms"] < RESTART_TARGET_MS),
        (
            f"stop-all < one grace period, {STOP_TARGET_S:g} s "
            f"({base['stop_s'] / n * 1000:.1f} ms a service)",
            base["stop_s"] < STOP_TARGET_S,
        ),
    ]
    if n <= 100:
        checks.append((f"idle CPU < {CPU_TARGET_PCT:g}% of a core", base["cpu_pct"] < 2))
        checks.append((f"RSS < {RSS_TARGET_MIB:g} MiB", base["rss_mib"] < RSS_TARGET_MIB))
    if largest:
        checks.append((f"list p50 < {LIST_TARGET_MS:g} ms", base["list_ms"] < LIST_TARGET_MS))
    for what, ok in checks:
        print(f"  aiwgd {what}: {verdict(ok)}")


MANAGERS: list[type[Manager]] = [Aiwgd, *PEER_CLASSES]
NAMES = [c.name for c in MANAGERS]


def run(ns: list[int], idle_s: float, only: list[str], tmp: Path, token: str) -> None:
    classes = [c for c in MANAGERS if c.name in only]
    for c in classes:
        print(f"  {c.name}: {c.note}")
    skipped: set[str] = set()
    for n in ns:
        results: dict[str, dict[str, Any]] = {}
        for cls in classes:
            if cls.name in skipped:
                continue
            mgr = cls(n, tmp / f"n{n}")
            try:
                results[cls.name] = measure(mgr, idle_s)
            except Unavailable as exc:
                print(str(exc))
                if cls.name != "aiwgd" or "exited" in str(exc):
                    skipped.add(cls.name)  # an install or start failure will not mend
            except Exception as exc:  # one manager's failure must not end the comparison
                print(f"{cls.name}: failed at N={n}: {type(exc).__name__}: {exc}")
            finally:
                mgr.close()
                if sweep(token):
                    print(f"  ({cls.name} left processes behind; killed by the sweep)")
        report(n, results, n == ns[-1])


def counts(text: str) -> list[int]:
    try:
        ns = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers") from None
    if any(n < 1 for n in ns):
        raise argparse.ArgumentTypeError("each N must be at least 1")
    return ns


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N 20 and 50, 10 s idle")
    ap.add_argument("--only", default=",".join(NAMES), help="managers to run, comma-separated")
    ap.add_argument("--n", type=counts, help="N values instead of the defaults, e.g. 5,10")
    args = ap.parse_args()
    only = args.only.split(",")
    if set(only) - set(NAMES):
        ap.error(f"--only: unknown manager {sorted(set(only) - set(NAMES))[0]!r}")
    ns = args.n or ([20, 50] if args.quick else [100, 500])
    idle_s = 10.0 if args.quick else 60.0
    token = uuid.uuid4().hex
    os.environ[MARK] = token  # inherited by every manager and so by every sleep
    become_subreaper()
    # `make` or a user ending the run with SIGTERM still gets the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="aiwg-services-", dir="/tmp"))
    print(
        f"Services at scale, N = {', '.join(map(str, ns))} x {' '.join(SLEEP_ARGV)}; "
        f"idle window {idle_s:.0f} s ({'quick' if args.quick else 'full'} run)"
    )
    try:
        run(ns, idle_s, only, tmp, token)
    finally:
        sweep(token)
        shutil.rmtree(tmp, ignore_errors=True)
        left = [p for p in marked(token) if is_sleep(p)]
        print(f"\ncleanup: {len(left)} `{' '.join(SLEEP_ARGV)}` of this run left")
        if left:
            raise SystemExit(f"sleeps left behind: {[p.pid for p in left]}")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
