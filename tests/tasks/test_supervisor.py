"""The supervisor with real daemons and real child processes.

Cap, priority order, timeouts and cancellation down the stop ladder (children that
ignore SIGTERM, grandchildren that escape with setsid), huge output, retries, reload
of the cap, kill -9 of the daemon mid-run, and shutdown with queued tasks.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.conftest import DaemonFactory
from tests.taskhelp import (
    assert_all_gone,
    max_concurrency,
    pids_in,
    prog,
    records,
    submit,
    task_config,
    wait_terminal,
)
from tests.utils import BASE_CONFIG, alive, deep_merge, wait_for, write_config


def test_cap_is_never_exceeded(start_daemon: DaemonFactory, project: Path) -> None:
    d = start_daemon(task_config(cap=3))
    rec = project / "rec.txt"
    ids = [
        submit(d, prog("--record", str(rec), f"t{i}", "--sleep", "0.2"))["id"] for i in range(10)
    ]
    for task_id in ids:
        assert wait_terminal(d, task_id)["state"] == "completed"
    recs = records(rec)
    assert len(recs) == 20
    assert max_concurrency(recs) == 3  # the cap was used, and never exceeded
    stats = d.call("task.stats")
    assert stats["max_active"] == 3 and stats["cap"] == 3
    assert stats["counts"]["completed"] == 10 and stats["running"] == 0


def test_priority_order_and_fifo_within_a_priority(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(cap=1))
    gate, rec = project / "gate", project / "rec.txt"
    blocker = submit(d, prog("--gate", str(gate)))
    wait_for(lambda: d.call("task.get", id=blocker["id"])["state"] == "running", 10, "blocker")
    order = [
        ("low", "low"),
        ("n1", "normal"),
        ("c", "critical"),
        ("n2", 0),
        ("h", "high"),
        ("n3", "normal"),
        ("p5", 5),
    ]
    ids = [submit(d, prog("--record", str(rec), name), priority=p)["id"] for name, p in order]
    queued = d.call("task.stats")
    assert queued["running"] == 1 and queued["queued"] == len(order)
    gate.touch()
    for task_id in ids:
        wait_terminal(d, task_id)
    started = [name for kind, name, *_ in records(rec) if kind == "start"]
    assert started == ["c", "h", "p5", "n1", "n2", "n3", "low"]


def test_timeout_kills_term_ignoring_child_and_escaped_grandchild(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(grace=0.3))
    pidfile, gfile = project / "pids", project / "gpids"
    argv = prog(
        "--pidfile", str(pidfile), "--ignore-term", "--grandchild", str(gfile), "--sleep", "60"
    )
    task = submit(d, argv, timeout_s=1.0)
    wait_for(lambda: pids_in(gfile), 10, "the grandchild to start")
    child, grandchild = pids_in(pidfile)[0], pids_in(gfile)[0]
    assert alive(child) and alive(grandchild)
    done = wait_terminal(d, task["id"])
    assert done["state"] == "timed_out"
    assert done["signal"] == signal.SIGKILL  # SIGTERM was ignored: the ladder went on
    assert "timed out after 1s" in done["error"]
    # The slot was freed only once both were gone.
    assert not alive(child) and not alive(grandchild)


def test_cancel_running_goes_down_the_ladder(start_daemon: DaemonFactory, project: Path) -> None:
    d = start_daemon(task_config(grace=0.3))
    pidfile, gfile = project / "pids", project / "gpids"
    argv = prog(
        "--pidfile", str(pidfile), "--ignore-term", "--grandchild", str(gfile), "--sleep", "60"
    )
    task = submit(d, argv)
    wait_for(lambda: pids_in(gfile), 10, "the grandchild to start")
    result = d.call("task.cancel", id=task["id"])
    assert result["state"] == "cancelled"
    assert not alive(pids_in(pidfile)[0]) and not alive(pids_in(gfile)[0])
    assert d.call("task.stats")["running"] == 0
    # A polite child ends at SIGTERM, within the grace period.
    polite = submit(d, prog("--pidfile", str(project / "p2"), "--sleep", "60"))
    wait_for(lambda: pids_in(project / "p2"), 10, "the child to start")
    result = d.call("task.cancel", id=polite["id"])
    assert result["state"] == "cancelled" and result["signal"] == signal.SIGTERM


def test_cancel_queued_and_finished(start_daemon: DaemonFactory, project: Path) -> None:
    d = start_daemon(task_config(cap=1))
    gate, marker = project / "gate", project / "ran"
    blocker = submit(d, prog("--gate", str(gate)))
    queued = submit(d, prog("--pidfile", str(marker)))
    result = d.call("task.cancel", id=queued["id"])
    assert result["state"] == "cancelled" and result["started_at"] is None
    gate.touch()
    assert wait_terminal(d, blocker["id"])["state"] == "completed"
    assert not marker.exists()  # the cancelled task never ran
    events = d.call("events.list", type="task.cancelled")["events"]
    assert [e["data"]["id"] for e in events] == [queued["id"]]


def test_huge_output_is_capped_with_marker_and_bounded_tail(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(tasks={"log_max_bytes": 1_048_576, "output_tail_bytes": 4096}))
    task = submit(d, prog("--print-bytes", str(20 * 1024 * 1024)))
    done = wait_terminal(d, task["id"], 60)
    assert done["state"] == "completed"
    log = Path(done["log_path"])
    size = log.stat().st_size
    assert 1_048_576 <= size < 1_048_576 + 1024
    text = log.read_bytes()
    assert b"[aiwgd] log cap of 1048576 bytes" in text  # the head, then the cut marked
    assert b"bytes of output cut; the last 524288 bytes follow" in text
    assert text.endswith(b"END\n")  # and the tail: the end of the output is kept
    assert len(done["output_tail"].encode()) <= 4096
    assert done["output_tail"].endswith("END\n")  # the tail is the latest output
    assert d.call("ping") == "pong"


def test_split_utf8_output_decodes_whole(start_daemon: DaemonFactory) -> None:
    d = start_daemon(task_config())
    done = wait_terminal(d, submit(d, prog("--split-utf8"))["id"])
    assert done["output_tail"] == "café € done\n"
    logs = d.call("task.logs", id=done["id"], offset=0, limit=4)
    assert logs["data"] == "café" and logs["next_offset"] == 5  # never half an "é"
    rest = d.call("task.logs", id=done["id"], offset=logs["next_offset"])
    assert logs["data"] + rest["data"] == "café € done\n" and rest["eof"]


def test_retries_with_backoff_then_final_state(start_daemon: DaemonFactory) -> None:
    d = start_daemon(task_config())
    task = submit(d, prog("--say", "trying", "--exit", "3"), max_retries=2)
    done = wait_terminal(d, task["id"])
    assert done["state"] == "failed" and done["attempt"] == 3
    assert done["exit_code"] == 3 and done["error"] == "exited with code 3"
    log = Path(done["log_path"]).read_text()
    assert log.count("trying") == 3 and "[aiwgd] attempt 3 of task" in log
    types = [
        e["type"]
        for e in d.call("events.list", type="task.*")["events"]
        if e["data"]["id"] == task["id"]
    ]
    assert types == [
        "task.queued",
        "task.started",
        "task.queued",
        "task.started",
        "task.queued",
        "task.started",
        "task.failed",
    ]
    # A cancelled task is never retried.
    slow = submit(d, prog("--sleep", "60"), max_retries=3)
    wait_for(lambda: d.call("task.get", id=slow["id"])["state"] == "running", 10, "start")
    assert d.call("task.cancel", id=slow["id"])["attempt"] == 1
    assert d.call("task.get", id=slow["id"])["state"] == "cancelled"


def test_reload_changes_the_cap_while_tasks_run(start_daemon: DaemonFactory, project: Path) -> None:
    cfg = task_config(cap=1)
    d = start_daemon(cfg)
    gate, rec = project / "gate", project / "rec.txt"
    ids = [
        submit(d, prog("--record", str(rec), f"t{i}", "--gate", str(gate)))["id"] for i in range(5)
    ]
    wait_for(lambda: d.call("task.stats")["running"] == 1, 10, "one running")
    cfg["daemon"]["max_parallel_actions"] = 3
    write_config(project, deep_merge(BASE_CONFIG, cfg))
    d.call("daemon.reload")
    wait_for(lambda: d.call("task.stats")["running"] == 3, 10, "three running after reload")
    cfg["daemon"]["max_parallel_actions"] = 1
    write_config(project, deep_merge(BASE_CONFIG, cfg))
    d.call("daemon.reload")
    stats = d.call("task.stats")
    assert stats["running"] == 3 and stats["cap"] == 1  # lowering kills nothing
    gate.touch()
    for task_id in ids:
        assert wait_terminal(d, task_id)["state"] == "completed"
    recs = records(rec)
    ends = {n: t for k, n, t, _ in recs if k == "end"}
    starts = {n: t for k, n, t, _ in recs if k == "start"}
    assert len(starts) == len(ends) == 5
    by_start = sorted(starts, key=lambda n: starts[n])
    early, late = by_start[:3], by_start[3:]
    # Under the lowered cap the last two ran one at a time, after the first three.
    assert starts[late[0]] >= max(ends[n] for n in early)
    assert starts[late[1]] >= ends[late[0]]


def test_kill9_mid_run_then_restart_loses_nothing(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(cap=2))
    gate, pidfile = project / "gate", project / "pids"
    # A retry each: an interrupted run goes again only with one left (on_interrupt).
    gated = prog("--pidfile", str(pidfile), "--gate", str(gate))
    ids = [submit(d, gated, max_retries=1)["id"] for _ in range(2)]
    ids += [submit(d, prog("--say", f"q{i}"))["id"] for i in range(4)]
    wait_for(lambda: len(pids_in(pidfile)) == 2, 10, "two running children")
    orphans = pids_in(pidfile)
    d.kill9()
    assert all(alive(p) for p in orphans)  # nobody killed them yet
    d2 = start_daemon(write=False)
    assert_all_gone(orphans)  # leftovers of the dead daemon were killed at start
    assert d2.call("task.stats")["totals"]["recovered"] == 2
    gate.touch()
    got = {i: wait_terminal(d2, i, 30) for i in ids}
    # Every acknowledged task is there and ended; the two interrupted ones ran again.
    assert all(t["state"] == "completed" for t in got.values())
    assert [got[i]["attempt"] for i in ids[:2]] == [2, 2]
    assert d2.stop() == 0
    assert_all_gone(pids_in(pidfile))


def test_shutdown_keeps_queued_tasks_for_the_next_start(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(cap=1, grace=0.2))
    gate, pidfile = project / "gate", project / "pids"
    running = submit(
        d, prog("--pidfile", str(pidfile), "--ignore-term", "--gate", str(gate)), max_retries=1
    )
    queued = [submit(d, prog("--say", f"later{i}"))["id"] for i in range(3)]
    wait_for(lambda: pids_in(pidfile), 10, "the running child")
    assert d.stop() == 2  # the stop needed a SIGKILL: unclean (aiwgd.infra.exitcodes)
    assert_all_gone(pids_in(pidfile))  # SIGTERM ignored: killed after the grace period
    stored = json.loads(d.paths.tasks_file.read_text())["tasks"]
    states = {t["id"]: t["state"] for t in stored}
    assert [states[i] for i in queued] == ["queued"] * 3
    assert states[running["id"]] == "queued"  # interrupted, then requeued per policy
    gate.touch()
    d2 = start_daemon(task_config(cap=1, grace=0.2), write=False)
    for task_id in [running["id"], *queued]:
        assert wait_terminal(d2, task_id)["state"] == "completed"
    assert d2.call("task.get", id=running["id"])["attempt"] == 2


def test_grandchild_left_by_a_finished_task_is_stopped(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(grace=0.3))
    gfile = project / "gpids"
    # The leader lives past the first tree snapshot, then exits 0 leaving the escapee.
    done = wait_terminal(d, submit(d, prog("--grandchild", str(gfile), "--sleep", "0.6"))["id"])
    assert done["state"] == "completed" and done["exit_code"] == 0
    assert not alive(pids_in(gfile)[0])  # the slot was freed only after it was gone
