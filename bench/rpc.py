"""RPC benchmark: the daemon's socket against a minimal asyncio echo server, CLI latency
against supervisorctl, and the daemon's idle footprint.

    .venv/bin/python bench/rpc.py [--quick]

1. Sequential `ping` round trips on one connection (p50, p99, req/s; medians of 3 runs
   alternating between the servers) and 50 concurrent connections (aggregate req/s),
   each from a separate client process, against a real daemon in a temp dir and, in
   the same run, against a minimal asyncio newline-JSON echo server on a Unix socket
   (the baseline), with each server's CPU microseconds per request (psutil: 10 ms
   ticks, so a run is long enough for that to be fine). Targets: daemon CPU per
   sequential ping within 2x of the baseline's; sequential >= 40% of the baseline's
   req/s, concurrent >= 30% (req/s on 2 cores mostly measures the client).
2. Wall time of `aiwg status` against the running daemon and of `supervisorctl status`
   against a real supervisord (temp config, unix socket, one trivial program): median
   of 20 each. Target: aiwg no slower than supervisorctl.
3. The daemon's RSS at idle and its CPU seconds over 60 s idle, all threads, from the
   scheduler's ns counts (targets: < 40 MiB, < 0.01 s). --quick shortens every phase
   (idle: 10 s) for smoke use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PING = b'{"jsonrpc":"2.0","method":"ping","id":%d}\n'
CONCURRENCY = 50
WARMUP = 200  # sequential requests a client sends before it starts timing
ROUNDS = 3  # sequential runs per server, alternating


# ---- the baseline: the least a newline-JSON RPC server over a Unix socket can do -------


async def _echo_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            req = json.loads(line)
            reply = {"jsonrpc": "2.0", "result": "pong", "id": req.get("id")}
            writer.write(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _echo_main(path: str) -> None:
    server = await asyncio.start_unix_server(_echo_conn, path=path, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# ---- the client side (runs in its own process) -------------------------------------------


def _read_line(sock: socket.socket, buf: bytearray) -> bytes:
    while True:
        i = buf.find(b"\n")
        if i >= 0:
            line = bytes(buf[:i])
            del buf[: i + 1]
            return line
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk


def _sequential(path: str, n: int) -> dict[str, Any]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    buf = bytearray()
    for i in range(min(WARMUP, n)):
        sock.sendall(PING % i)
        _read_line(sock, buf)
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        sock.sendall(PING % i)
        reply = _read_line(sock, buf)
        lat.append(time.perf_counter() - t)
        if b'"pong"' not in reply:
            raise RuntimeError(f"unexpected reply {reply[:200]!r}")
    total = time.perf_counter() - t0
    sock.close()
    lat.sort()
    return {
        "n": n,
        "p50_us": lat[n // 2] * 1e6,
        "p99_us": lat[int(n * 0.99)] * 1e6,
        "req_s": n / total,
    }


async def _one_conn(path: str, stop_at: float, counts: list[int], idx: int) -> None:
    reader, writer = await asyncio.open_unix_connection(path)
    i = 0
    while time.perf_counter() < stop_at:
        writer.write(PING % i)
        line = await reader.readline()
        if b'"pong"' not in line:
            raise RuntimeError(f"unexpected reply {line[:200]!r}")
        i += 1
    counts[idx] = i
    writer.close()


async def _concurrent_main(path: str, seconds: float) -> dict[str, Any]:
    counts = [0] * CONCURRENCY
    t0 = time.perf_counter()
    stop_at = t0 + seconds
    await asyncio.gather(*(_one_conn(path, stop_at, counts, i) for i in range(CONCURRENCY)))
    total = time.perf_counter() - t0
    return {"connections": CONCURRENCY, "requests": sum(counts), "req_s": sum(counts) / total}


def client_main(mode: str, path: str, amount: float) -> None:
    if mode == "seq":
        out = _sequential(path, int(amount))
    else:
        out = asyncio.run(_concurrent_main(path, amount))
    print(json.dumps(out))


# ---- orchestration -----------------------------------------------------------------------


def run_client(mode: str, path: str, amount: float) -> dict[str, Any]:
    """The load comes from a separate process, as a real client's would."""
    out = subprocess.run(
        [sys.executable, __file__, "--client", mode, path, str(amount)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def wait_socket(path: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {path}")


def start_daemon(root: Path, quiet: bool = True) -> subprocess.Popen[bytes]:
    """quiet: defaults but no file watching or cron jobs; else the defaults as created."""
    if quiet:
        (root / ".aiwg").mkdir()
        (root / ".aiwg" / "daemon.json").write_text(
            json.dumps({"watch": {"enabled": False}, "schedule": {"enabled": False}})
        )
    from bench._common import spawn_daemon  # the client processes never need it

    proc = spawn_daemon(root)
    wait_socket(str(root / ".aiwg/daemon/daemon.sock"))
    return proc


def start_echo(path: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--echo", path], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def median_wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


SUPERVISOR_CONF = """[unix_http_server]
file={d}/supervisor.sock
[supervisord]
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}
nodaemon=true
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{d}/supervisor.sock
[program:sleeper]
command=/bin/sleep 86400
"""


def supervisorctl_median(tmp: Path, runs: int) -> float | None:
    supervisord, ctl = BIN / "supervisord", BIN / "supervisorctl"
    if not supervisord.exists():
        print("  supervisor not installed (pip install -e '.[bench]'): skipped")
        return None
    conf = tmp / "supervisord.conf"
    conf.write_text(SUPERVISOR_CONF.format(d=tmp))
    proc = subprocess.Popen(
        [str(supervisord), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_socket(str(tmp / "supervisor.sock"))
        deadline = time.monotonic() + 15
        while (
            b"RUNNING"
            not in subprocess.run([str(ctl), "-c", str(conf), "status"], capture_output=True).stdout
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("supervisord's program never reached RUNNING")
            time.sleep(0.1)
        return median_wall([str(ctl), "-c", str(conf), "status"], runs)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def measured(proc: Any, load: Any) -> dict[str, Any]:
    """A client run's result plus the server's CPU microseconds per request."""
    before = cpu_s(proc)
    result: dict[str, Any] = load()
    requests = result.get("requests", result.get("n", 0) + WARMUP)
    result["cpu_us"] = (cpu_s(proc) - before) * 1e6 / requests
    return result


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("p50_us", "p99_us", "req_s", "cpu_us")
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def cpu_s(proc: Any) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> int:
    from bench._common import cpu_ns  # needs the repo on sys.path (set below)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run for smoke use")
    args = ap.parse_args()
    seq_n = 2_000 if args.quick else 20_000
    conc_s = 1.5 if args.quick else 5.0
    idle_s = 10.0 if args.quick else 60.0
    runs = 5 if args.quick else 20

    import psutil

    tmp = Path(tempfile.mkdtemp(prefix="aiwg-bench-", dir="/tmp"))
    root = tmp / "proj"
    root.mkdir()
    echo_path = str(tmp / "echo.sock")
    daemon = start_daemon(root)
    plain_root = tmp / "plain"
    plain_root.mkdir()
    plain = start_daemon(plain_root, quiet=False)
    echo = start_echo(echo_path)
    sock = str(root / ".aiwg/daemon/daemon.sock")
    try:
        dproc = psutil.Process(daemon.pid)
        rss_start = dproc.memory_info().rss / 2**20
        print(f"RPC ({'quick' if args.quick else 'full'} run; clients are separate processes)")
        servers = {"baseline": (echo_path, psutil.Process(echo.pid)), "aiwgd": (sock, dproc)}
        # Sequential rounds alternate between the two servers and the medians are kept:
        # on a 2-core machine the client and any other load move single runs a lot.
        seq: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        for _ in range(ROUNDS):
            for name, (path, proc) in servers.items():
                seq[name].append(measured(proc, lambda p=path: run_client("seq", p, seq_n)))
        conc = {
            name: measured(proc, lambda p=path: run_client("conc", p, conc_s))
            for name, (path, proc) in servers.items()
        }
        s_med = {name: median_of(runs_) for name, runs_ in seq.items()}
        for name in servers:
            s, c = s_med[name], conc[name]
            print(
                f"  {name:<9} sequential: p50 {s['p50_us']:7.1f} us  p99 {s['p99_us']:7.1f} us  "
                f"{s['req_s']:8.0f} req/s  server CPU {s['cpu_us']:5.1f} us/req   "
                f"{CONCURRENCY} conns: {c['req_s']:8.0f} req/s  CPU {c['cpu_us']:5.1f} us/req"
            )
        bs, ds, bc, dc = s_med["baseline"], s_med["aiwgd"], conc["baseline"], conc["aiwgd"]
        cpu_seq, cpu_conc = ds["cpu_us"] / bs["cpu_us"], dc["cpu_us"] / bc["cpu_us"]
        print(
            f"  CPU per request, aiwgd / baseline: sequential {cpu_seq:4.2f}x "
            f"(target <= 2x: {verdict(cpu_seq <= 2)})   concurrent {cpu_conc:4.2f}x"
        )
        seq_ratio, conc_ratio = ds["req_s"] / bs["req_s"], dc["req_s"] / bc["req_s"]
        print(
            f"  req/s ratio sequential {seq_ratio:6.1%} "
            f"(target >= 40%: {verdict(seq_ratio >= 0.4)})   concurrent {conc_ratio:6.1%} "
            f"(target >= 30%: {verdict(conc_ratio >= 0.3)})"
        )

        print(f"CLI wall time, median of {runs}")
        aiwg = median_wall([str(BIN / "aiwg"), "--root", str(root), "status"], runs)
        sv = supervisorctl_median(tmp, runs)
        line = f"  aiwg status {aiwg * 1000:6.1f} ms"
        if sv is not None:
            line += (
                f"   supervisorctl status {sv * 1000:6.1f} ms   "
                f"(target aiwg <= supervisorctl: {verdict(aiwg <= sv)})"
            )
        print(line)

        print(
            f"Daemon footprint (idle {idle_s:.0f} s): the loaded daemon above, and one on "
            "the defaults\n  (file watcher on .aiwg/; no cron jobs)"
        )
        time.sleep(1.0)  # let the last connections close
        procs = {"loaded": dproc, "defaults": psutil.Process(plain.pid)}
        rss_before = {k: p.memory_info().rss / 2**20 for k, p in procs.items()}
        c0 = {k: cpu_ns(p.pid) for k, p in procs.items()}
        time.sleep(idle_s)
        for name, p in procs.items():
            cpu = (cpu_ns(p.pid) - c0[name]) / 1e9
            rss = p.memory_info().rss / 2**20
            first = (
                f"start {rss_start:5.1f}, after load {rss_before[name]:5.1f}, "
                if (name == "loaded")
                else ""
            )
            print(
                f"  {name:<9} RSS {first}idle {rss:5.1f} MiB "
                f"(target < 40: {verdict(rss < 40)});  CPU over {idle_s:.0f} s idle "
                f"{cpu:.4f} s (target < 0.01: {verdict(cpu < 0.01)})"
            )
        print("  (CPU: the threads' sum from /proc/PID/task/TID/schedstat, to the ns)")
    finally:
        echo.terminate()
        echo.wait(10)
        for d in (daemon, plain):
            d.send_signal(signal.SIGTERM)
            d.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--echo":
        asyncio.run(_echo_main(sys.argv[2]))
    else:
        sys.path.insert(0, str(REPO))
        os.chdir(REPO)
        sys.exit(main())
