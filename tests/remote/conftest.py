"""Fixtures for remote attempts: a real redis-server and real `aiwg worker` processes.

redis-server listens on a Unix socket only (`--port 0`) in a short temp dir under /tmp
(AF_UNIX paths are capped near 107 bytes), with appendonly + appendfsync always so a
restart keeps everything it acknowledged. Workers are the real CLI, started the way a
user starts one, and killed at teardown with everything they started: their process
group, their descendants, and any process carrying the queue's mark (a remote attempt's
child runs in a session of its own and may outlive a worker killed with -9).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.utils import env_for_tests, wait_for

REDIS_SERVER = "redis-server"
MISSING = "redis-server not installed (Debian: apt install redis-server)"


def need_redis_server() -> str:
    """The redis-server program; skip (or fail under CI) when it is missing."""
    path = shutil.which(REDIS_SERVER)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    return path


class RedisServer:
    """A real redis-server on a Unix socket in its own temp dir."""

    def __init__(self, program: str, password: str | None = None) -> None:
        self.program = program
        self.password = password
        self.dir = Path(tempfile.mkdtemp(prefix="rds-", dir="/tmp")).resolve()
        self.socket = str(self.dir / "redis.sock")
        self.url = f"unix://{self.socket}"
        self.log = self.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        argv = [
            self.program,
            "--port", "0",
            "--unixsocket", self.socket,
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--logfile", str(self.log),
            "--daemonize", "no",
        ]  # fmt: skip
        if self.password is not None:
            argv += ["--requirepass", self.password]
        return argv

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.proc = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def answers_or_gone() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return True
            with self.client(timeout=1.0) as c:
                return bool(c.ping())

        try:
            wait_for(answers_or_gone, timeout, "redis-server to answer PING")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlog:\n{self.logs()}") from None
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited {self.proc.returncode}: {self.logs()}")
        return self

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def client(self, timeout: float = 5.0) -> Any:
        """A redis-py client on the socket (bytes replies). No retries: redis-py's
        default backs off for seconds on a refused connection, and a test asking a
        stopped server wants the error at once."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis(
            unix_socket_path=self.socket,
            password=self.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SHUTDOWN (the AOF is already fsynced per write); SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(Exception), self.client(timeout=2.0) as c:
            c.shutdown(nosave=True)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> None:
        """Stop and start again on the same socket and data (the AOF)."""
        self.stop()
        self.start()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A real redis-server, stopped and its data removed at teardown."""
    server = RedisServer(need_redis_server()).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_with_password() -> Iterator[RedisServer]:
    """A real redis-server that needs `.password` (AUTH)."""
    server = RedisServer(need_redis_server(), password="s3cret-" + uuid.uuid4().hex[:8]).start()
    try:
        yield server
    finally:
        server.close()


def marked(queue: str) -> list[psutil.Process]:
    """Live processes carrying AIWG_QUEUE=<queue> (a remote attempt's children)."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("AIWG_QUEUE") == queue and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


class WorkerProc:
    """A real `aiwg worker` process (its own process group)."""

    def __init__(
        self,
        url: str,
        queue: str,
        root: Path,
        max_parallel: int = 1,
        name: str | None = None,
        env: dict[str, str] | None = None,
        password_env: str | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.url = url
        self.queue = queue
        self.root = Path(root)
        self.max_parallel = max_parallel
        self.name = name or f"w-{uuid.uuid4().hex[:8]}"
        self.env = {**env_for_tests(), **(env or {})}
        self.password_env = password_env
        self.extra = extra or []
        self.stderr_path = Path(tempfile.mkstemp(prefix="aiwg-worker-", suffix=".err")[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen: set[int] = set()  # every pid seen under this worker, for teardown

    def argv(self) -> list[str]:
        argv = [
            sys.executable, "-m", "aiwgd.cli", "worker",
            "--url", self.url,
            "--queue", self.queue,
            "--root", str(self.root),
            "--max-parallel", str(self.max_parallel),
            "--name", self.name,
        ]  # fmt: skip
        if self.password_env is not None:
            argv += ["--password-env", self.password_env]
        return [*argv, *self.extra]

    def start(self, wait: bool = True, timeout: float = 20.0) -> WorkerProc:
        with self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                env=self.env,
                cwd=self.root,
                start_new_session=True,
            )
        if wait:
            self.wait_ready(timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def rq_names(self, connection: Any) -> list[str]:
        """Names of the RQ workers of this process (one, or one per --max-parallel)."""
        from rq import Queue, Worker

        workers = Worker.all(queue=Queue(self.queue, connection=connection))
        return [w.name for w in workers if w.name == self.name or w.name.startswith(self.name)]

    def wait_ready(self, timeout: float = 20.0) -> None:
        import redis as redis_py
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        conn = redis_py.Redis.from_url(
            self.url, password=self._password(), socket_timeout=2, retry=Retry(NoBackoff(), 0)
        )

        def registered_or_gone() -> bool:
            assert self.proc is not None
            return self.proc.poll() is not None or len(self.rq_names(conn)) >= self.max_parallel

        try:
            wait_for(registered_or_gone, timeout, f"worker {self.name} to register on {self.queue}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstderr:\n{self.stderr()}") from None
        finally:
            conn.close()
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"aiwg worker exited {self.proc.returncode}: {self.stderr()}")

    def _password(self) -> str | None:
        return self.env.get(self.password_env) if self.password_env else None

    def processes(self) -> list[psutil.Process]:
        """The worker, its descendants (horses and their children) and the queue's
        marked processes still alive."""
        procs: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.NoSuchProcess):
            top = psutil.Process(self.pid)
            procs[top.pid] = top
            for child in top.children(recursive=True):
                procs[child.pid] = child
        for p in marked(self.queue):
            procs.setdefault(p.pid, p)
        self.seen.update(procs)
        return list(procs.values())

    def signal_all(self, sig: int) -> list[int]:
        """Send `sig` to every process of this worker (SIGSTOP/SIGCONT a whole worker)."""
        pids = []
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(sig)
                pids.append(p.pid)
        return pids

    def kill9(self) -> None:
        """SIGKILL the worker process alone (what its horse and child do is theirs)."""
        assert self.proc is not None
        self.processes()  # remember them for teardown
        self.proc.kill()
        self.proc.wait(5)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a warm stop) and wait; SIGKILL if it will not go."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.processes()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"aiwg worker did not stop within {timeout}s") from None

    def kill_everything(self) -> None:
        """Teardown: SIGKILL (SIGCONT first, for a stopped one) the worker's group, its
        descendants and every process it was seen with or that carries its queue mark."""
        if self.proc is not None and self.proc.poll() is None:
            self.processes()
        for p in marked(self.queue):
            self.seen.add(p.pid)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in self.seen:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                p = psutil.Process(pid)
                p.send_signal(signal.SIGCONT)
                p.kill()
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        self.stderr_path.unlink(missing_ok=True)


WorkerFactory = Callable[..., WorkerProc]


@pytest.fixture
def start_worker() -> Iterator[WorkerFactory]:
    """Start real `aiwg worker` processes; at teardown each is killed with everything it
    started. `start_worker(url=.., queue=.., root=.., wait=True, **opts)`, opts as
    WorkerProc's: max_parallel, name, env, password_env, extra (more CLI args)."""
    started: list[WorkerProc] = []

    def factory(url: str, queue: str, root: Path, wait: bool = True, **opts: Any) -> WorkerProc:
        w = WorkerProc(url, queue, root, **opts)
        started.append(w)
        return w.start(wait=wait)

    yield factory
    for w in started:
        with contextlib.suppress(Exception):
            w.kill_everything()
