"""The managers bench/services.py compares: one interface, supervisord, PM2 and circus.

Not a benchmark (`make bench` skips `_*.py`). supervisord comes with the `bench` extra;
PM2 (npm) and circus (pip --target) are installed under bench/.peers/ on first use, and a
manager that will not install or start is skipped with the one-line reason it raises
(`Unavailable`). Every process the bench starts carries MARK in its environment, so the
final sweep finds whatever a manager left behind, wherever it was reparented to.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "bench" / ".peers"
PY_PEERS = PEERS / "py"
PM2_VERSION = "7.0.4"  # pinned: a new major may change the API the driver below uses
CIRCUS_VERSION = "0.19.0"
SLEEP_ARGV = ["/bin/sleep", "100000"]
MARK = "AIWG_BENCH_SERVICES"  # every process of this run has it, valued with the run's id


class Unavailable(Exception):
    """This manager cannot be measured here; the message is the one line to print."""


def _session_popen(argv: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
    """A manager in its own session (so its group can be killed), output to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdin=kw.pop("stdin", subprocess.DEVNULL), stdout=kw.pop("stdout", out),
            stderr=out, start_new_session=True, **kw,
        )  # fmt: skip


def _end(proc: subprocess.Popen[Any] | None, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL to its whole group: the stop ladder, for our own children."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Manager:
    """What the bench needs of a process manager. `prepare` is not timed, `launch` is."""

    name = "?"
    note = ""  # how it is configured, printed with the results
    proc: subprocess.Popen[bytes] | None = None  # the manager, where we start it directly

    def __init__(self, n: int, tmp: Path) -> None:
        self.n = n
        self.tmp = tmp / self.name
        self.tmp.mkdir(parents=True)

    def prepare(self) -> None:
        """Install, write the config file naming the N programs."""

    def launch(self) -> None:
        """Start the manager on that config (returns at once)."""
        raise NotImplementedError

    def running(self) -> int:
        """How many programs its API reports running (0 while it does not answer)."""
        raise NotImplementedError

    def pid(self) -> int:
        """The manager's own daemon process (not its children)."""
        assert self.proc is not None
        return self.proc.pid

    def list_once(self) -> None:
        raise NotImplementedError

    def list_ms(self, calls: int) -> list[float]:
        """Each of `calls` sequential calls of its list API, on one connection, in ms."""
        out = []
        for _ in range(calls):
            t0 = time.perf_counter()
            self.list_once()
            out.append((time.perf_counter() - t0) * 1000)
        return out

    def stop_all(self) -> None:
        """Ask it to stop every program (the caller times until the processes are gone)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the manager itself; anything left is for the caller's sweep."""
        raise NotImplementedError


# ---- supervisord -------------------------------------------------------------------------


class Supervisord(Manager):
    name = "supervisord"
    note = "startsecs=0 (RUNNING at spawn, as aiwgd's running), autorestart=true"

    def prepare(self) -> None:
        try:  # by name: supervisor ships no type hints
            transport = importlib.import_module("supervisor.xmlrpc").SupervisorTransport
        except ImportError as exc:
            raise Unavailable(f"supervisord: not installed ({exc})") from None
        self.sock = self.tmp / "supervisor.sock"
        self.conf = self.tmp / "supervisord.conf"
        (self.tmp / "logs").mkdir()
        lines = [
            f"[unix_http_server]\nfile={self.sock}\nchmod=0700\n",
            f"[supervisord]\nnodaemon=true\nlogfile={self.tmp / 'supervisord.log'}\n"
            f"pidfile={self.tmp / 'supervisord.pid'}\nchildlogdir={self.tmp / 'logs'}\n",
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        ]
        lines += [
            f"[program:s{i}]\ncommand={' '.join(SLEEP_ARGV)}\nautostart=true\n"
            "autorestart=true\nstartsecs=0\n"
            for i in range(self.n)
        ]
        self.conf.write_text("\n".join(lines))
        self.transport = transport("", "", f"unix://{self.sock}")
        self.rpc: Any = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=self.transport)

    def launch(self) -> None:
        argv = [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf), "-n"]
        self.proc = _session_popen(argv, self.tmp / "stdout.log")

    def running(self) -> int:
        try:
            info = self.rpc.supervisor.getAllProcessInfo()
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            self.transport.close()  # it keeps one connection; a failed request spoils it
            return 0
        return sum(1 for p in info if p["statename"] == "RUNNING")

    def list_once(self) -> None:
        self.rpc.supervisor.getAllProcessInfo()

    def stop_all(self) -> None:
        self.rpc.supervisor.stopAllProcesses()

    def close(self) -> None:
        _end(self.proc)


# ---- PM2 ---------------------------------------------------------------------------------

# One node process drives PM2's programmatic API: it connects once (starting the God
# Daemon) and answers JSON lines on stdin, so the bench times the API, not node's boot.
PM2_DRIVER = r"""
const pm2 = require(process.argv[2]);
const reply = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const fail = (done) => (err) => done({ error: String(err && (err.message || err)) });
const cmds = {
  start: (m, done) => pm2.connect((err) => err ? fail(done)(err)
    : pm2.start(m.file, (err) => err ? fail(done)(err) : done({ ok: true }))),
  running: (m, done) => pm2.list((err, list) => err ? fail(done)(err) : done({
    online: list.filter((p) => p.pm2_env.status === "online" && p.pid).length })),
  list: (m, done) => {
    const ms = [];
    const one = () => {
      const t = process.hrtime.bigint();
      pm2.list((err) => {
        if (err) return fail(done)(err);
        ms.push(Number(process.hrtime.bigint() - t) / 1e6);
        return ms.length < m.n ? one() : done({ ms });
      });
    };
    one();
  },
  stop: (m, done) => pm2.stop("all", (err) => err ? fail(done)(err) : done({ ok: true })),
  kill: (m, done) => pm2.killDaemon(() => { pm2.disconnect(); done({ ok: true }); }),
};
require("readline").createInterface({ input: process.stdin })
  .on("line", (line) => { const m = JSON.parse(line); cmds[m.cmd](m, reply); })
  .on("close", () => process.exit(0));
reply({ hello: true });
"""


def ensure_pm2() -> Path:
    """PM2's package directory, installed under bench/.peers on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise Unavailable("pm2: skipped, `node`/`npm` not found on PATH")
    pkg = PEERS / "node_modules" / "pm2"
    try:
        installed = json.loads((pkg / "package.json").read_text()).get("version")
    except (OSError, ValueError):
        installed = None
    if installed != PM2_VERSION:
        print(f"(installing pm2@{PM2_VERSION} into {PEERS.relative_to(REPO)}/ with npm)")
        r = subprocess.run(
            [npm, "install", "--prefix", str(PEERS), "--no-audit", "--no-fund",
             "--save-exact", f"pm2@{PM2_VERSION}"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["?"])[-1]
            raise Unavailable(f"pm2: skipped, npm install failed: {last}")
    return pkg


class Pm2(Manager):
    name = "pm2"
    note = 'fork mode, interpreter "none" (sleep spawned directly), autorestart'

    driver: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        pkg = ensure_pm2()
        self.home = self.tmp / "home"  # never the user's ~/.pm2
        self.home.mkdir()
        apps = [
            {"name": f"s{i}", "script": SLEEP_ARGV[0], "args": SLEEP_ARGV[1:],
             "interpreter": "none", "autorestart": True}
            for i in range(self.n)
        ]  # fmt: skip
        self.eco = self.tmp / "ecosystem.json"
        self.eco.write_text(json.dumps({"apps": apps}))
        script = self.tmp / "driver.js"
        script.write_text(PM2_DRIVER)
        # No version check against pm2.io (the network is not ours to use), no banner.
        env = {**os.environ, "PM2_HOME": str(self.home), "PM2_DISABLE_VERSION_CHECK": "true",
               "PM2_PROGRAMMATIC": "true"}  # fmt: skip
        self.driver = _session_popen(
            ["node", str(script), str(pkg)], self.tmp / "driver.log",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )  # fmt: skip
        self._buf = b""
        self._read(30)  # {"hello": true}: node and pm2 loaded, no daemon yet

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.driver is not None and self.driver.stdout is not None
        fd, deadline = self.driver.stdout.fileno(), time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise Unavailable(f"pm2: no answer from the driver within {timeout:g} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise Unavailable("pm2: the driver exited (see its log)")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg: dict[str, Any] = json.loads(line)
        if "error" in msg:
            raise Unavailable(f"pm2: {msg['error']}")
        return msg

    def ask(self, timeout: float = 60, **cmd: Any) -> dict[str, Any]:
        assert self.driver is not None and self.driver.stdin is not None
        self.driver.stdin.write(json.dumps(cmd).encode() + b"\n")
        self.driver.stdin.flush()
        return self._read(timeout)

    def launch(self) -> None:
        self.ask(cmd="start", file=str(self.eco), timeout=300)

    def running(self) -> int:
        return int(self.ask(cmd="running")["online"])

    def pid(self) -> int:
        return int((self.home / "pm2.pid").read_text())  # the God Daemon

    def list_ms(self, calls: int) -> list[float]:
        return [float(v) for v in self.ask(cmd="list", n=calls, timeout=300)["ms"]]

    def stop_all(self) -> None:
        self.ask(cmd="stop", timeout=300)

    def close(self) -> None:
        if self.driver is None:
            return
        try:
            if self.driver.poll() is None:
                self.ask(cmd="kill", timeout=30)  # `pm2 kill`: the daemon and its apps
        except (Unavailable, OSError):
            pass
        _end(self.driver)


# ---- circus ------------------------------------------------------------------------------


def ensure_circus() -> Any:
    """circus's client module, installed under bench/.peers/py on first use."""
    if not (PY_PEERS / "circus").is_dir():
        print(f"(installing circus=={CIRCUS_VERSION} into {PY_PEERS.relative_to(REPO)}/)")
        r = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(PY_PEERS),
             f"circus=={CIRCUS_VERSION}"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["?"])[-1]
            raise Unavailable(f"circus: skipped, pip install failed: {last}")
    if str(PY_PEERS) not in sys.path:
        sys.path.append(str(PY_PEERS))  # after ours: the venv's psutil stays the one used
    try:
        return importlib.import_module("circus.client")
    except Exception as exc:  # any import failure means: not on this Python
        raise Unavailable(f"circus: skipped, it does not import here ({exc})") from None


class Circus(Manager):
    name = "circus"
    note = "one watcher per program, numprocesses=1; list = `status` of every watcher"

    def prepare(self) -> None:
        client_mod = ensure_circus()
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.ini = self.tmp / "circus.ini"
        lines = [
            f"[circus]\nendpoint = {self.endpoint}\n"
            f"pubsub_endpoint = tcp://127.0.0.1:{free_port()}\nstatsd = False\n"
        ]
        lines += [
            f"[watcher:s{i}]\ncmd = {SLEEP_ARGV[0]}\nargs = {' '.join(SLEEP_ARGV[1:])}\n"
            "numprocesses = 1\ncopy_env = True\n"
            for i in range(self.n)
        ]
        self.ini.write_text("\n".join(lines))
        self.client = client_mod.CircusClient(endpoint=self.endpoint, timeout=10)
        self.call_error: type[Exception] = client_mod.CallError

    def launch(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(PY_PEERS)}
        argv = [sys.executable, "-c", "import sys; from circus.circusd import main; main()"]
        self.proc = _session_popen([*argv, str(self.ini)], self.tmp / "circusd.log", env=env)

    def _status(self) -> dict[str, Any]:
        reply: dict[str, Any] = self.client.call({"command": "status", "properties": {}})
        return reply

    def running(self) -> int:
        try:
            statuses = self._status().get("statuses", {})
        except self.call_error:
            return 0
        return sum(1 for s in statuses.values() if s == "active")

    def list_once(self) -> None:
        self._status()

    def stop_all(self) -> None:
        self.client.call({"command": "stop", "properties": {"waiting": False}})

    def close(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.client.call({"command": "quit", "properties": {"waiting": False}})
                self.proc.wait(20)
        except (self.call_error, subprocess.TimeoutExpired):
            pass
        _end(self.proc)
        self.client.stop()


PEER_CLASSES: list[type[Manager]] = [Supervisord, Pm2, Circus]


def sleeps_under(pid: int) -> list[psutil.Process]:
    """The `sleep 100000` processes among `pid`'s descendants."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in kids if is_sleep(p)]


def is_sleep(p: psutil.Process) -> bool:
    try:
        return bool(p.cmdline() == SLEEP_ARGV)
    except psutil.Error:
        return False
