"""Helpers every test uses: real daemon processes, real sockets, readiness waits.

Nothing here sleeps a fixed time to "let things settle": `wait_for` polls a condition
with a deadline and fails with a message saying what never happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from aiwgd.client import Client, ClientError
from aiwgd.config.paths import Paths

REPO = Path(__file__).resolve().parent.parent
# Small programs the tests run as children (tests/scripts/).
SCRIPTS = Path(__file__).resolve().parent / "scripts"

# Quiet defaults for tests: the original AIWG defaults watch src/ and run cron jobs.
BASE_CONFIG: dict[str, Any] = {
    "watch": {"enabled": False, "paths": []},
    "schedule": {"enabled": False, "jobs": []},
}


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.02,
) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # a not-yet-ready socket, file, ...
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_exc}")


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def write_config(root: Path, config: dict[str, Any]) -> Path:
    path = Paths(root).config_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    return path


def env_for_tests() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("AIWG_ROOT", None)
    env.pop("NOTIFY_SOCKET", None)
    return env


class DaemonProc:
    """A real `aiwgd` process in a project directory."""

    def __init__(self, root: Path, extra_args: list[str] | None = None) -> None:
        self.root = root
        self.paths = Paths(root)
        self.stderr_path = root / "aiwgd.stderr"
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        """The command start() runs (a subclass may wrap it, e.g. in `unshare`)."""
        return [sys.executable, "-m", "aiwgd", "--root", str(self.root), *self.extra_args]

    def start(self, wait: bool = True, timeout: float = 15.0) -> DaemonProc:
        self.stderr_file = self.stderr_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr_file,
            env=env_for_tests(),
            cwd=self.root,
        )
        if wait:
            self.wait_ready(timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def wait_ready(self, timeout: float = 15.0) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"aiwgd exited {self.proc.returncode}: {self.stderr()}")
            try:
                return bool(self.call("ping", _timeout=2.0) == "pong")
            except ClientError:
                return False

        try:
            wait_for(ready, timeout, "the daemon to answer ping")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstderr:\n{self.stderr()}") from None

    def client(self, timeout: float | None = 10.0) -> Client:
        return Client(self.root, timeout=timeout).connect()

    def call(self, method: str, _timeout: float = 10.0, **params: Any) -> Any:
        with Client(self.root, timeout=_timeout) as c:
            return c.call(method, **params)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it will not go. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"aiwgd did not stop within {timeout}s") from None
        finally:
            self.stderr_file.close()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)


def run_python(
    code: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -c CODE` in a fresh interpreter with the tests' environment (what a
    command imports is only seen from a process of its own)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env_for_tests(),
        cwd=cwd,
        timeout=timeout,
    )


@contextlib.contextmanager
def daemon_in_tmp(
    config: dict[str, Any] | None = None, prepare: Callable[[Path], None] | None = None
) -> Iterator[DaemonProc]:
    """A daemon in its own fresh project dir under /tmp, for a module-scoped fixture.

    `config` is merged over BASE_CONFIG; `prepare(root)` may lay out files before the
    daemon starts. Afterwards the daemon is stopped and the dir removed.
    """
    root = Path(tempfile.mkdtemp(prefix="aiwg-", dir="/tmp")).resolve()
    if prepare is not None:
        prepare(root)
    write_config(root, deep_merge(BASE_CONFIG, config or {}))
    d = DaemonProc(root).start()
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


def run_cli(
    root: Path | None, *args: str, timeout: float = 30.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `aiwg ARGS` as a subprocess (the way a user does)."""
    cmd = [sys.executable, "-m", "aiwgd.cli"]
    if root is not None:
        cmd += ["--root", str(root)]
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or env_for_tests(),
        stdin=subprocess.DEVNULL,
    )


def descendants_of(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(pid: int) -> bool:
    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Subscriber:
    """A connection subscribed to some event types, reading its notifications."""

    def __init__(self, d: DaemonProc, types: list[str]) -> None:
        self.client = d.client(timeout=10)
        self.root = d.root
        result = self.client.call("events.subscribe", types=types)
        self.sid: str = result["subscription_id"]
        self.others: list[dict[str, Any]] = []

    def next(
        self, pred: Callable[[dict[str, Any]], bool] = lambda e: True, timeout: float = 10
    ) -> dict[str, Any]:
        """The next event notification satisfying `pred` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.client.pending_notifications:
                msg = self.client.pending_notifications.pop(0)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching event within {timeout}s")
                msg = self.client.read_message(timeout=left)
            assert "id" not in msg, f"unexpected reply: {msg}"
            params: dict[str, Any] = msg["params"]
            if msg["method"] == "event" and pred(params):
                return params
            self.others.append(msg)

    def close(self) -> None:
        self.client.close()
