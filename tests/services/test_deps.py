"""depends_on: start order by condition (ready, completed, started), reverse-order
stop, and restart_with_dependency."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.conftest import DaemonFactory
from tests.services.svchelp import get, script, service, wait_state
from tests.utils import Subscriber, wait_for

# Appends its name to order.txt, then (db only) waits for go.txt before saying it listens.
PROGRAM = """
import os, sys, time
name = sys.argv[1]
with open("order.txt", "a") as fh:
    fh.write(name + "\\n")
if name == "db":
    while not os.path.exists("go.txt"):
        time.sleep(0.02)
    print("listening", flush=True)
if name == "migrate":
    sys.exit(0)
while True:
    time.sleep(1)
"""


def test_start_order_by_condition_and_reverse_stop(
    start_daemon: DaemonFactory, project: Path
) -> None:
    path = script(project, "prog", PROGRAM)
    services = {
        "worker": service(path, "worker", depends_on={"web": "started"}),
        "web": service(path, "web", depends_on={"db": "ready", "migrate": "completed"}),
        "migrate": service(path, "migrate", depends_on=["db"]),
        "db": service(path, "db", ready={"log_line": "listening"}),
    }
    d = start_daemon(config={"services": services})
    wait_state(d, "db", "running")
    web = wait_state(d, "web", "waiting")
    assert web["reason"] == "waiting for db (ready)"
    assert get(d, "migrate")["reason"] == "waiting for db (ready)"
    assert get(d, "worker")["reason"] == "waiting for web (started)"
    (project / "go.txt").write_text("")
    wait_state(d, "worker", "running", "ready")
    assert get(d, "migrate")["state"] == "exited"
    order = wait_for(
        lambda: len(o := (project / "order.txt").read_text().split()) == 4 and o, 5, "4 starts"
    )
    # `started` lets worker go once web is spawned: their programs race to write.
    assert order[:2] == ["db", "migrate"] and set(order[2:]) == {"web", "worker"}
    web_at = get(d, "web")["history"][0]["time"]
    assert get(d, "worker")["history"][0]["time"] >= web_at

    sub = Subscriber(d, ["service.stopped"])
    d.call("service.stop", name="all")
    stopped = [sub.next()["data"]["name"] for _ in range(3)]
    assert stopped == ["worker", "web", "db"]
    sub.close()


def test_dependents_restart_only_when_asked(start_daemon: DaemonFactory, project: Path) -> None:
    (project / "go.txt").write_text("")
    path = script(project, "prog", PROGRAM)
    services = {
        "db": service(path, "db", ready={"log_line": "listening"}, restart="always"),
        "api": service(path, "api", depends_on=["db"], restart_with_dependency=True),
        "ui": service(path, "ui", depends_on=["db"]),
    }
    d = start_daemon(config={"services": services})
    api_pid = wait_state(d, "api", "running", "ready")["pid"]
    ui_pid = wait_state(d, "ui", "running", "ready")["pid"]
    d.call("service.restart", name="db")
    wait_for(lambda: get(d, "api")["pid"] not in (None, api_pid), 10, "api to restart")
    wait_state(d, "db", "ready")
    assert get(d, "ui")["pid"] == ui_pid
    assert get(d, "api")["restarts"] == 1
    assert get(d, "ui")["restarts"] == 0


def test_ready_by_probe_and_env_file(start_daemon: DaemonFactory, project: Path) -> None:
    with socket.socket() as s:  # a free port for the service to listen on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    body = """
    import os, socket, time
    print("greeting:", os.environ["GREETING"], os.environ["QUOTED"], flush=True)
    while not os.path.exists("go.txt"):
        time.sleep(0.02)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(os.environ["PORT"])))
    srv.listen()
    while True:
        conn, _ = srv.accept()
        conn.close()
    """
    path = script(project, "server", body)
    (project / "app.env").write_text(
        '# settings\nGREETING=hello\nexport QUOTED="a b # c"\nPORT=' + str(port) + "\n"
    )
    probe = {"tcp": f"127.0.0.1:{port}", "timeout_s": 1}
    services = {
        "srv": service(path, env_file="app.env", ready={"probe": probe}),
        "client": service(path, env_file="app.env", depends_on=["srv"], autostart=True),
    }
    services["client"]["env"] = {"PORT": "0"}
    d = start_daemon(config={"services": services})
    wait_state(d, "srv", "running")
    assert get(d, "client")["reason"] == "waiting for srv (ready)"
    # The env_file's values, comments and quotes handled (and the service's env wins).
    wait_for(
        lambda: "greeting: hello a b # c" in d.call("service.logs", name="srv")["lines"],
        5,
        "the greeting",
    )
    (project / "go.txt").write_text("")
    wait_state(d, "srv", "ready")
    wait_state(d, "client", "running", "ready")
