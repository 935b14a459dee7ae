"""A real full disk under a real daemon (issue 8, "Short writes").

The project root is a small tmpfs; a filler file takes every free page. Submits then
go on only while their journal line fits in the journal's last page: the next write
comes back short, then fails. What must hold: a submit is acknowledged only once its
whole line is on disk; a refused one leaves nothing behind (not in memory, not half a
line in the journal); the store takes writes again by itself once space returns and
stops reporting the error; after kill -9 every acknowledged task is back and the
journal is not reported damaged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiwgd.client import Client, RpcError
from aiwgd.config import Paths
from tests.taskhelp import prog, task_config
from tests.tmpfs import fill, tmpfs
from tests.utils import BASE_CONFIG, DaemonProc, deep_merge, run_cli, write_config

PAYLOAD = "p" * 700  # a journal line of about 1 KiB: a few fit in a page, then one straddles
UNAVAILABLE = -32007


def submit_until_refused(c: Client, acked: dict[str, list[str]], limit: int = 200) -> RpcError:
    for i in range(limit):
        argv = prog("--say", f"{len(acked)}-{i}-{PAYLOAD}")
        try:
            task = c.call("task.submit", command=argv)
        except RpcError as exc:
            return exc
        acked[task["id"]] = argv
    raise AssertionError(f"{limit} submits on a full disk were all acknowledged")


def store_status(d: DaemonProc) -> dict[str, Any]:
    status: dict[str, Any] = d.call("daemon.status")["subsystems"]["store"]
    return status


def test_full_disk_loses_no_acknowledged_task_and_recovers(project: Path, tmp_path: Path) -> None:
    gate = tmp_path / "open"  # off the small disk
    daemons: list[DaemonProc] = []
    with tmpfs(project, "4m"):
        try:
            # One slot, held by a task waiting on a gate: the others stay queued, so the
            # journal holds only what the submits wrote.
            write_config(project, deep_merge(BASE_CONFIG, task_config(cap=1)))
            d = DaemonProc(project).start()
            daemons.append(d)
            acked: dict[str, list[str]] = {}
            with d.client() as c:
                blocker = c.call("task.submit", command=prog("--gate", str(gate)))
                acked[blocker["id"]] = blocker["command"]
                for i in range(3):
                    argv = prog("--say", f"before-{i}")
                    acked[c.call("task.submit", command=argv)["id"]] = argv

                filler = fill(project)
                refused = submit_until_refused(c, acked)
                assert refused.code == UNAVAILABLE, refused
                assert "cannot write to disk" in refused.message
                assert "No space left on device" in refused.message
                journal = Paths(project).tasks_journal.read_bytes()
                assert journal.endswith(b"\n"), "a refused submit left half a line behind"
                # Refused again and again while the disk stays full; nothing is kept.
                for _ in range(3):
                    assert submit_until_refused(c, acked, limit=1).code == UNAVAILABLE
                listed = c.call("task.list", limit=10_000)["tasks"]
                assert sorted(t["id"] for t in listed) == sorted(acked)
                assert "No space left on device" in (store_status(d)["last_error"] or "")

            # What a person sees: one line, a non-zero exit, no traceback.
            cli = run_cli(project, "task", "run", "--", *prog("--say", PAYLOAD))
            assert cli.returncode != 0, cli.stdout
            assert "No space left on device" in cli.stderr and "Traceback" not in cli.stderr

            # Space returns: the same daemon takes submits again and clears the error.
            filler.unlink()
            with d.client() as c:
                for i in range(5):
                    argv = prog("--say", f"after-{i}-{PAYLOAD}")
                    acked[c.call("task.submit", command=argv)["id"]] = argv
            assert store_status(d)["last_error"] is None

            d.kill9()
            again = DaemonProc(project).start()
            daemons.append(again)
            recovery = store_status(again)["recovery"]
            assert recovery["damaged_journal"] is None, recovery
            assert recovery["bad_journal_lines"] == [] and recovery["torn_bytes"] == 0
            with again.client() as c:
                for task_id, argv in acked.items():
                    assert c.call("task.get", id=task_id)["command"] == argv
                assert c.call("task.list", limit=10_000)["total"] == len(acked)
            assert not list(Paths(project).daemon_dir.glob("tasks.journal.damaged-*"))
        finally:
            gate.touch()
            for daemon in daemons:
                daemon.stop()
