"""Driving a real `aiwg worker` without the daemon: enqueue a job with RQ exactly as the
daemon's executor does (the payload of the design), then read what the worker wrote to
Redis (aiwgd.remote.keys): the `out` stream, the `run` hash, the `hb` key."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

from rq import Queue

from aiwgd.remote import keys
from tests.utils import wait_for


def new_queue() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


def project(tmp_path: Path, config: dict[str, Any] | None = None) -> Path:
    """A checkout of the project for the worker's --root, with a short stop grace."""
    root = tmp_path / "proj"
    (root / ".aiwg").mkdir(parents=True)
    cfg = {"daemon": {"stop_grace_seconds": 1}, **(config or {})}
    (root / ".aiwg" / "daemon.json").write_text(json.dumps(cfg))
    return root


def script(root: Path, name: str, body: str) -> list[str]:
    """A small Python program in the project; its argv (cwd: the root)."""
    path = root / name
    path.write_text("import os, signal, sys, time\n" + body)
    return [sys.executable, name]


class Jobs:
    """Jobs on one queue of one Redis, and what the worker wrote for them."""

    def __init__(self, server: Any, queue: str) -> None:
        self.client = server.client()
        self.queue = queue
        self.n = 0

    def execution(self) -> str:
        self.n += 1
        return f"task{uuid.uuid4().hex[:6]}-{self.n}"  # any RQ job id will do

    def payload(self, execution: str, argv: list[str], **over: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "v": keys.VERSION,
            "execution": execution,
            "task": execution.rsplit("-", 1)[0],
            "attempt": 1,
            "argv": argv,
            "cwd": "",
            "root": "/the/daemons/root",
            "grace_s": 1.0,
            "tail_bytes": 4096,
            "heartbeat_ttl_s": 1.5,
            "queue": self.queue,
        }
        payload.update(over)
        return payload

    def enqueue(self, argv: list[str], execution: str | None = None, **over: Any) -> str:
        execution = execution or self.execution()
        Queue(self.queue, connection=self.client, serializer=keys.SERIALIZER).enqueue(
            keys.JOB_FUNC,
            self.payload(execution, argv, **over),
            job_id=execution,
            retry=None,
            job_timeout=-1,
            result_ttl=keys.KEEP_S,
            failure_ttl=keys.KEEP_S,
            ttl=None,
        )
        return execution

    def key(self, kind: str, execution: str) -> str:
        return keys.key(self.queue, kind, execution)

    def entries(self, execution: str) -> list[dict[str, Any]]:
        out = []
        for _id, fields in self.client.xrange(self.key("out", execution)):
            entry = {k.decode(): v for k, v in fields.items()}
            out.append({k: v if k == "d" else v.decode() for k, v in entry.items()})
        return out

    def output(self, execution: str) -> bytes:
        return b"".join(e["d"] for e in self.entries(execution) if e["k"] == "out")

    def end(self, execution: str) -> dict[str, Any] | None:
        ends = [e for e in self.entries(execution) if e["k"] == "end"]
        return ends[-1] if ends else None

    def wait_end(self, execution: str, timeout: float = 15.0) -> dict[str, Any]:
        end = wait_for(lambda: self.end(execution), timeout, f"the end of {execution}")
        assert isinstance(end, dict)
        return end

    def wait_output(self, execution: str, text: bytes, timeout: float = 15.0) -> None:
        wait_for(lambda: text in self.output(execution), timeout, f"{text!r} from {execution}")

    def start(self, execution: str) -> dict[str, Any] | None:
        starts = [e for e in self.entries(execution) if e["k"] == "start"]
        return starts[0] if starts else None

    def heartbeat(self, execution: str) -> dict[str, Any] | None:
        raw = self.client.get(self.key("hb", execution))
        return None if raw is None else dict(json.loads(raw))


def rig(
    server: Any,
    start_worker: Any,
    tmp_path: Path,
    config: dict[str, Any] | None = None,
    **opts: Any,
) -> tuple[Path, Any, Jobs]:
    """A project, a real worker on a fresh queue of `server`, and its jobs."""
    root = project(tmp_path, config)
    queue = new_queue()
    w = start_worker(url=server.url, queue=queue, root=root, **opts)
    return root, w, Jobs(server, queue)


def pids_in(path: Path) -> list[int]:
    """The pids a test program wrote into `path` (once it has)."""
    text = wait_for(lambda: path.exists() and path.read_text().strip(), 10, f"{path}")
    return [int(p) for p in str(text).split()]
