"""events.* and dlq.* over the real socket of a real daemon, and their CLI."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aiwgd.client import Client, RpcError
from tests.conftest import DaemonFactory
from tests.httphook import HookServer
from tests.utils import DaemonProc, Subscriber, run_cli, wait_for


def subscribers_of(d: DaemonProc) -> list[str]:
    return [s["name"] for s in d.call("daemon.status")["subsystems"]["events"]["subscribers"]]


def test_subscriptions_match_globs_and_carry_the_event(daemon: DaemonProc) -> None:
    ci = Subscriber(daemon, ["ci.*"])
    every = Subscriber(daemon, ["*"])
    two = Subscriber(daemon, ["deploy.started", "ci.fail?d"])
    with daemon.client() as c:
        emitted = c.call("events.emit", type="other.thing", data={"n": 1})
        c.call("events.emit", type="ci.failed", data={"job": "lint"})
        c.call("events.emit", type="deploy.started")
    assert emitted["type"] == "other.thing" and emitted["source"] == "rpc"
    assert emitted["id"] and emitted["time"] > 0 and emitted["data"] == {"n": 1}

    got = ci.next()
    assert (got["type"], got["data"], got["source"]) == ("ci.failed", {"job": "lint"}, "rpc")
    assert set(got) == {"id", "time", "source", "type", "data"}
    assert [every.next()["type"] for _ in range(3)][-3:] == [
        "other.thing",
        "ci.failed",
        "deploy.started",
    ]
    assert [two.next()["type"] for _ in range(2)] == ["ci.failed", "deploy.started"]
    # Nothing else reached the narrow subscriber: the next one it sees is a fresh one.
    daemon.call("events.emit", type="ci.passed")
    assert ci.next()["type"] == "ci.passed"
    for s in (ci, every, two):
        s.close()


def test_emit_validates_type_and_data(daemon: DaemonProc) -> None:
    with daemon.client() as c:
        for bad in ("Bad.Type", "nodots", "a..b", ".a", "a.b.", "a b.c", ""):
            with pytest.raises(RpcError) as exc:
                c.call("events.emit", type=bad)
            assert exc.value.code == -32602, bad
            assert "type" in exc.value.message
        with pytest.raises(RpcError) as exc:
            c.call("events.emit", type="ok.type", data=[1, 2])
        assert exc.value.code == -32602 and "data" in exc.value.message
        with pytest.raises(RpcError) as exc:
            c.call("events.emit", type="ok.type", source="me")
        assert exc.value.code == -32602 and "source" in exc.value.message
        with pytest.raises(RpcError) as exc:
            c.call("events.subscribe", types=[])
        assert exc.value.code == -32602
        with pytest.raises(RpcError) as exc:
            c.call("events.subscribe", types=["Task.*"])
        assert exc.value.code == -32602 and "types[0]" in exc.value.message


def test_list_filters_by_type_source_since_and_limit(daemon: DaemonProc) -> None:
    with daemon.client() as c:
        first = c.call("events.emit", type="build.started", data={"i": 0})
        for i in range(1, 6):
            c.call("events.emit", type="build.step", data={"i": i})
        c.call("events.emit", type="build.finished", data={"i": 6})

        def datas(**params: Any) -> list[int]:
            return [e["data"].get("i") for e in c.call("events.list", **params)["events"]]

        assert datas(type="build.*") == [0, 1, 2, 3, 4, 5, 6]
        assert datas(type="build.*", limit=2) == [5, 6]
        assert datas(type="build.step", since=first["id"]) == [1, 2, 3, 4, 5]
        assert datas(since=first["time"], type="build.f*") == [6]
        everything = c.call("events.list", limit=1000)["events"]
        assert everything[0]["type"] == "daemon.started"
        assert {e["source"] for e in everything} == {"daemon", "rpc"}
        assert datas(source="daemon", type="build.*") == []
        with pytest.raises(RpcError) as exc:
            c.call("events.list", since="ev-nope")
        assert exc.value.code == -32001 and "ev-nope" in exc.value.message
        with pytest.raises(RpcError) as exc:
            c.call("events.list", limit=0)
        assert exc.value.code == -32602


def test_unsubscribe_and_closing_the_connection_end_subscriptions(daemon: DaemonProc) -> None:
    base = set(subscribers_of(daemon))
    a = Subscriber(daemon, ["x.*"])
    b = Subscriber(daemon, ["y.*"])
    assert set(subscribers_of(daemon)) - base == {f"rpc:{a.sid}", f"rpc:{b.sid}"}
    with daemon.client() as other:
        with pytest.raises(RpcError) as exc:  # not this connection's subscription
            other.call("events.unsubscribe", subscription_id=a.sid)
        assert exc.value.code == -32001
    assert a.client.call("events.unsubscribe", subscription_id=a.sid) == {"unsubscribed": a.sid}
    with pytest.raises(RpcError) as exc:
        a.client.call("events.unsubscribe", subscription_id=a.sid)
    assert exc.value.code == -32001
    assert f"rpc:{a.sid}" not in subscribers_of(daemon)
    b.close()
    wait_for(
        lambda: f"rpc:{b.sid}" not in subscribers_of(daemon),
        5,
        "the closed connection's subscription to go",
    )
    a.close()


def test_a_socket_subscriber_that_never_reads_does_not_block_others(
    start_daemon: DaemonFactory,
) -> None:
    daemon = start_daemon(config={"events": {"queue_size": 500}})
    stuck = Subscriber(daemon, ["load.*"])  # subscribes, then never reads
    reader = Subscriber(daemon, ["load.*"])
    total = 3000
    got: list[int] = []

    def read_all() -> None:
        while len(got) < total:
            got.append(reader.next(timeout=30)["data"]["i"])

    t = threading.Thread(target=read_all, daemon=True)
    t.start()
    pad = "x" * 1000
    with daemon.client() as c:
        for start in range(0, total, 250):
            c.batch(
                [
                    ("events.emit", {"type": "load.tick", "data": {"i": i, "pad": pad}})
                    for i in range(start, start + 250)
                ]
            )
        t0 = time.perf_counter()
        assert c.call("ping") == "pong"
        assert time.perf_counter() - t0 < 1.0
    t.join(30)
    assert got == list(range(total))
    subs = {
        s["name"]: s for s in daemon.call("daemon.status")["subsystems"]["events"]["subscribers"]
    }
    assert subs[f"rpc:{stuck.sid}"]["dropped"] > 0
    assert subs[f"rpc:{reader.sid}"]["dropped"] == 0
    # When the slow one finally reads, it is told (once) that it lost events.
    deadline = time.monotonic() + 20
    told = []
    while not told and time.monotonic() < deadline:
        msg = stuck.client.read_message(timeout=10)
        if msg["method"] == "events.dropped":
            told.append(msg["params"])
    assert told and told[0]["subscription_id"] == stuck.sid and told[0]["dropped"] > 0
    stuck.close()
    reader.close()


# ---- dead letters, with a webhook rule against a local HTTP server --------------------


@pytest.fixture
def hook() -> Iterator[HookServer]:
    with HookServer(status=500) as h:
        yield h


def hook_config(url: str) -> dict[str, Any]:
    return {
        "events": {"max_retries": 1, "retry_base_ms": 20},
        "rules": [
            {
                "id": "notify-ci",
                "trigger": {"type": "ci.*"},
                "action": {"type": "webhook", "url": url, "timeout_s": 5},
            }
        ],
    }


def dlq(d: DaemonProc) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = d.call("dlq.list")["entries"]
    return entries


def test_dead_letters_persist_across_restart_then_replay_and_purge(
    start_daemon: DaemonFactory, hook: HookServer
) -> None:
    d = start_daemon(config=hook_config(hook.url()))
    ev = d.call("events.emit", type="ci.failed", data={"job": "unit"})
    entries = wait_for(lambda: dlq(d), 15, "the failing webhook's event in the DLQ")
    entry = entries[0]
    assert entry["subscriber"] == "automation:notify-ci"
    assert entry["attempts"] == 2  # the first try and one retry
    assert "HTTP 500" in entry["error"]
    assert entry["event"]["id"] == ev["id"] and entry["event"]["data"] == {"job": "unit"}
    assert len(hook.bodies) == 2
    on_disk = [json.loads(line) for line in d.paths.dlq_file.read_text().splitlines()]
    assert [e["id"] for e in on_disk] == [entry["id"]]

    assert d.stop() == 0
    d = start_daemon(config=hook_config(hook.url()), write=False)
    assert [e["id"] for e in dlq(d)] == [entry["id"]]
    listed = run_cli(d.root, "dlq", "list")
    assert listed.returncode == 0 and entry["id"] in listed.stdout
    assert "automation:notify-ci" in listed.stdout and "HTTP 500" in listed.stdout

    hook.status = 200
    replay = run_cli(d.root, "dlq", "replay", entry["id"])
    assert replay.returncode == 0, replay.stderr
    assert f"replayed {entry['id']}" in replay.stdout
    wait_for(lambda: len(hook.bodies) == 3, 10, "the replayed POST")
    assert hook.bodies[-1]["id"] == ev["id"]
    assert dlq(d) == []
    assert d.paths.dlq_file.read_text() == ""

    hook.status = 503
    d.call("events.emit", type="ci.flaky")
    wait_for(lambda: dlq(d), 15, "a second dead letter")
    purged = run_cli(d.root, "--json", "dlq", "purge")
    assert purged.returncode == 0 and json.loads(purged.stdout) == {"purged": 1}
    assert d.stop() == 0
    d = start_daemon(config=hook_config(hook.url()), write=False)
    assert dlq(d) == []


def test_dlq_rpc_and_cli_errors(daemon: DaemonProc) -> None:
    with Client(daemon.root) as c:
        for params in ({}, {"id": "dl-x", "all": True}):
            with pytest.raises(RpcError) as exc:
                c.call("dlq.replay", **params)
            assert exc.value.code == -32602
        with pytest.raises(RpcError) as exc:
            c.call("dlq.replay", id="dl-missing")
        assert exc.value.code == -32001 and "dl-missing" in exc.value.message
        with pytest.raises(RpcError) as exc:
            c.call("dlq.purge", id="dl-missing")
        assert exc.value.code == -32001
        assert c.call("dlq.replay", all=True) == {"replayed": [], "skipped": []}
    r = run_cli(daemon.root, "dlq", "replay", "dl-missing")
    assert r.returncode == 1 and "error -32001" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(daemon.root, "dlq", "replay")
    assert r.returncode == 2 and "ID or --all" in r.stderr  # a usage mistake
    r = run_cli(daemon.root, "dlq", "list")
    assert r.returncode == 0 and "empty" in r.stdout


def test_events_cli_lists_emits_and_follows(daemon: DaemonProc) -> None:
    r = run_cli(daemon.root, "emit", "ci.finished", '{"ok": true}')
    assert r.returncode == 0 and "emitted ci.finished" in r.stdout
    r = run_cli(daemon.root, "emit", "Nope")  # usage mistakes: exit 2
    assert r.returncode == 2 and "error -32602" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(daemon.root, "emit", "a.b", "[1]")
    assert r.returncode == 2 and "JSON object" in r.stderr
    r = run_cli(daemon.root, "events", "--type", "ci.*")
    assert r.returncode == 0 and "ci.finished" in r.stdout and '{"ok":true}' in r.stdout
    assert "daemon.started" not in r.stdout
    r = run_cli(daemon.root, "--json", "events", "-n", "1")  # one event per line
    assert r.returncode == 0 and json.loads(r.stdout)["type"] == "ci.finished"

    import subprocess
    import sys

    from tests.utils import env_for_tests

    follow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiwgd.cli",
            "--root",
            str(daemon.root),
            "--json",
            "events",
            "-f",
            "--type",
            "deploy.*",
            "-n",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for_tests(),
    )
    try:
        # It subscribes, then prints history; wait until it is subscribed to emit.
        wait_for(
            lambda: any(n.startswith("rpc:") for n in subscribers_of(daemon)),
            10,
            "the follower to subscribe",
        )
        daemon.call("events.emit", type="other.noise")
        daemon.call("events.emit", type="deploy.done", data={"v": 2})
        assert follow.stdout is not None
        line = follow.stdout.readline()
        ev = json.loads(line)
        assert ev["type"] == "deploy.done" and ev["data"] == {"v": 2}
    finally:
        follow.terminate()
        follow.wait(10)
