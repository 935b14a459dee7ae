"""Helpers of the end-to-end remote tests: a daemon config with an `rq` executor, the
program remote tasks run, and waits on what a user sees of a remote task."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from aiwgd.client import RpcError
from aiwgd.remote import keys
from tests.conftest import DaemonFactory
from tests.remote.conftest import RedisServer, WorkerFactory, WorkerProc
from tests.taskhelp import records, task_config
from tests.utils import DaemonProc, wait_for

INVALID, UNAVAILABLE = -32602, -32007
marks = records  # PROG's --mark lines: (start|end, execution, time, pid)
TTL = 3.0  # heartbeat_ttl_s of the test executors
SLACK = 6.0  # a lost worker is noticed within TTL + this (poll ticks, the horse's own TTL)

# The program remote tasks run: flags in order, each one behaviour. `{execution}` and
# `{attempt}` in a value become this run's, read from the AIWG_EXECUTION mark the worker
# gives its child, so one argv behaves per attempt and its marks say which attempt ran.
PROG = """\
import os, signal, sys, time

EXECUTION = os.environ.get("AIWG_EXECUTION", "none.0")
ATTEMPT = EXECUTION.replace("-", ".").rpartition(".")[2]


def mark(path, kind):
    # O_APPEND: lines of concurrent runs never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(fd, f"{kind} {EXECUTION} {time.time():.6f} {os.getpid()}\\n".encode())
    os.close(fd)


def main(argv):
    marks, code, i = None, 0, 0
    while i < len(argv):
        flag = argv[i]
        value = argv[i + 1].replace("{execution}", EXECUTION).replace("{attempt}", ATTEMPT) \\
            if i + 1 < len(argv) else ""
        i += 2
        if flag == "--mark":  # "start" now, "end" if it runs to its end
            marks = value
            mark(marks, "start")
        elif flag == "--say":
            print(value, flush=True)
        elif flag == "--lines":  # A:B prints "line A" .. "line B-1"
            a, b = value.split(":")
            for n in range(int(a), int(b)):
                print(f"line {n}", flush=True)
        elif flag == "--gate":
            while not os.path.exists(value):
                time.sleep(0.01)
        elif flag == "--sleep":
            time.sleep(float(value))
        elif flag == "--exit":
            code = int(value)
        elif flag == "--fail-on":  # exit 7 when this run is that attempt
            code = 7 if ATTEMPT == value else code
        elif flag == "--ignore-term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            i -= 1
    if marks:
        mark(marks, "end")
    return code


sys.exit(main(sys.argv[1:]))
"""


def execution(task_id: str, attempt: int = 1) -> str:
    """The execution id (= RQ job id) of a task's attempt, as the daemon names it."""
    return keys.execution_id(task_id, attempt)


def new_queue() -> str:
    """A queue of its own per test: workers and keys of other tests never meet it."""
    return f"t-{uuid.uuid4().hex[:10]}"


def farm_config(url: str, queue: str, **executor: Any) -> dict[str, Any]:
    """Quiet task defaults (cap 4, grace 1 s, fast retries) plus executor "farm"."""
    cfg = task_config(cap=4, grace=1.0)
    farm = {"type": "rq", "url": url, "queue": queue, "heartbeat_ttl_s": TTL, **executor}
    cfg["executors"] = {"farm": farm}
    return cfg


def farm(
    redis: RedisServer,
    project: Path,
    start_daemon: DaemonFactory,
    start_worker: WorkerFactory,
    **executor: Any,
) -> tuple[DaemonProc, WorkerProc]:
    """A daemon with executor "farm" (options `executor`) and one worker on its queue."""
    queue = new_queue()
    d = start_daemon(farm_config(redis.url, queue, **executor))
    return d, start_worker(url=redis.url, queue=queue, root=project)


def program(project: Path) -> list[str]:
    """argv prefix running PROG (written into the project dir once)."""
    path = project / "remoteprog.py"
    if not path.exists():
        path.write_text(PROG)
    return [sys.executable, str(path)]


def submit_remote(d: DaemonProc, argv: list[str], **params: Any) -> dict[str, Any]:
    task: dict[str, Any] = d.call("task.submit", command=argv, executor="farm", **params)
    assert task["executor"] == "farm", task
    return task


def get(d: DaemonProc, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = d.call("task.get", id=task_id)
    return task


def running_on(
    d: DaemonProc, task_id: str, attempt: int = 1, timeout: float = 15.0
) -> dict[str, Any]:
    """Wait until `attempt` of the task has started on a worker; its runner (placement)."""

    def started() -> dict[str, Any] | None:
        task = get(d, task_id)
        runner = task.get("runner") or {}
        ok = task["state"] == "running" and task["attempt"] == attempt
        return task if ok and runner.get("phase") == "started" else None

    what = f"attempt {attempt} of {task_id} to start"
    try:
        task: dict[str, Any] = wait_for(started, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the task: {get(d, task_id)}") from None
    runner: dict[str, Any] = task["runner"]
    assert runner["executor"] == "farm", runner
    assert runner["execution"] == execution(task_id, attempt), runner
    return runner


def log_text(d: DaemonProc, task_id: str) -> str:
    """The whole task log as task.logs reads it."""
    text, offset = "", 0
    while True:
        part: dict[str, Any] = d.call("task.logs", id=task_id, offset=offset, limit=512 * 1024)
        text += str(part["data"])
        if part["next_offset"] == offset or part["eof"]:
            return text
        offset = part["next_offset"]


def rpc_error(d: DaemonProc, method: str, **params: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        d.call(method, **params)
    return info.value


def executions(path: Path, kind: str = "start") -> list[str]:
    return [execution for k, execution, _, _ in marks(path) if k == kind]


def pid_of(path: Path, execution: str) -> int:
    """The pid of the run of `execution` (waits for its start mark)."""

    def found() -> int | None:
        for kind, ex, _, pid in marks(path):
            if kind == "start" and ex == execution:
                return pid
        return None

    pid: int = wait_for(found, 15, f"{execution} to start")
    return pid


def daemon_log(d: DaemonProc) -> str:
    """What the daemon logged: its log file and its stderr."""
    path = d.paths.log_file
    return (path.read_text(errors="replace") if path.exists() else "") + d.stderr()
