"""Health probes against real things on this machine: an HTTP server on 127.0.0.1 that
answers 200 or 500, a socket that accepts and never answers, a listening and a closed
TCP port, and commands that exit 0, exit 1 or hang (and must be killed with the whole
process group). What is asserted is what a user reads: ok or not, and the detail line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

from aiwgd.config.health import Probe
from aiwgd.services.health import probe

LOCAL = "127.0.0.1"


# ---- real local servers (shared with test_health_monitor.py) ---------------------------


class StatusServer(ThreadingHTTPServer):
    """Answers every GET with `status` (changeable while it runs)."""

    daemon_threads = True
    status = 200
    paths: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: StatusServer

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet test output


@contextlib.contextmanager
def http_server(status: int = 200) -> Iterator[StatusServer]:
    server = StatusServer((LOCAL, 0), _Handler)
    server.status = status
    server.paths = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def url(server: StatusServer, path: str = "/health") -> str:
    return f"http://{LOCAL}:{server.server_address[1]}{path}"


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        s.listen(8)
        yield s.getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on (bound and released: connections are refused)."""
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        port: int = s.getsockname()[1]
    return port


HANG = """\
import os, subprocess, sys, time
kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {kid.pid}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""


def script(root: Path, name: str, text: str) -> list[str]:
    path = root / name
    path.write_text(text)
    return [sys.executable, str(path)]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def pids_in(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()]


def run(p: Probe, cwd: Path) -> tuple[bool, str]:
    return asyncio.run(probe(p, cwd=str(cwd), env=dict(os.environ)))


# ---- http ------------------------------------------------------------------------------


def test_http_200_is_healthy_and_sends_a_get_for_the_path(project: Path) -> None:
    with http_server(200) as srv:
        assert run(Probe(http=url(srv, "/health?deep=1")), project) == (True, "HTTP 200")
        assert srv.paths == ["/health?deep=1"]


def test_http_500_fails_with_the_status_and_the_expected_one(project: Path) -> None:
    with http_server(500) as srv:
        assert run(Probe(http=url(srv)), project) == (False, "HTTP 500 (expected 200)")
        # A check may expect another status: then that one is healthy.
        assert run(Probe(http=url(srv), status=500), project) == (True, "HTTP 500")


def test_http_that_never_answers_fails_at_its_timeout(project: Path) -> None:
    with silent_listener() as port:
        p = Probe(http=f"http://{LOCAL}:{port}/", timeout_s=0.3)
        assert run(p, project) == (False, "timed out after 0.3s")


def test_http_to_a_closed_port_fails_with_the_os_error(project: Path) -> None:
    port = closed_port()
    ok, detail = run(Probe(http=f"http://{LOCAL}:{port}/"), project)
    assert not ok
    assert detail == f"GET http://{LOCAL}:{port}/: Connection refused"


# ---- tcp -------------------------------------------------------------------------------


def test_tcp_listening_port_is_healthy(project: Path) -> None:
    with silent_listener() as port:
        assert run(Probe(tcp=f"{LOCAL}:{port}"), project) == (True, f"connected to {LOCAL}:{port}")


def test_tcp_closed_port_fails_with_the_os_error(project: Path) -> None:
    port = closed_port()
    ok, detail = run(Probe(tcp=f"{LOCAL}:{port}"), project)
    assert (ok, detail) == (False, f"connect {LOCAL}:{port}: Connection refused")


# ---- command ---------------------------------------------------------------------------


def test_command_exit_codes_are_the_detail_and_output_goes_nowhere(project: Path) -> None:
    ok_cmd = script(project, "ok.py", "print('all good ' * 1000)\n")
    bad_cmd = script(project, "bad.py", "import sys\nprint('broken')\nsys.exit(1)\n")
    assert run(Probe(command=ok_cmd), project) == (True, "exit code 0")
    assert run(Probe(command=bad_cmd), project) == (False, "exit code 1")


def test_command_runs_in_cwd_with_env(project: Path) -> None:
    cmd = script(
        project,
        "envcheck.py",
        "import os, sys\nsys.exit(0 if os.environ.get('HEALTH_X') == 'y' "
        "and os.path.exists('marker') else 3)\n",
    )
    (project / "marker").touch()
    env = {**os.environ, "HEALTH_X": "y"}
    assert asyncio.run(probe(Probe(command=cmd), cwd=str(project), env=env)) == (
        True,
        "exit code 0",
    )
    assert run(Probe(command=cmd), project) == (False, "exit code 3")


def test_hung_command_is_killed_with_its_whole_group_at_the_timeout(project: Path) -> None:
    pidfile = project / "hang.pids"
    cmd = [*script(project, "hang.py", HANG), str(pidfile)]

    async def main() -> tuple[bool, str]:
        task = asyncio.ensure_future(
            probe(Probe(command=cmd, timeout_s=1), cwd=str(project), env=dict(os.environ))
        )
        # The program and its own child both started before the timeout.
        while not pidfile.exists() and not task.done():
            await asyncio.sleep(0.02)
        return await task

    assert asyncio.run(main()) == (False, "timed out after 1s")
    leader, kid = pids_in(pidfile)
    assert gone(leader) and gone(kid)


def test_a_command_that_cannot_start_fails_with_why(project: Path) -> None:
    ok, detail = run(Probe(command=[str(project / "no-such-program")]), project)
    assert not ok
    assert (
        detail == "cannot run " + str(project / "no-such-program") + ": No such file or directory"
    )


def test_a_cancelled_command_probe_leaves_no_process(project: Path) -> None:
    pidfile = project / "hang.pids"
    cmd = [*script(project, "hang.py", HANG), str(pidfile)]

    async def main() -> None:
        task = asyncio.ensure_future(
            probe(Probe(command=cmd, timeout_s=60), cwd=str(project), env=dict(os.environ))
        )
        async with asyncio.timeout(20):
            while not pidfile.exists():
                await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(main())
    leader, kid = pids_in(pidfile)
    assert gone(leader) and gone(kid)


def test_probes_run_concurrently_a_hung_one_does_not_hold_the_others(project: Path) -> None:
    async def main() -> list[tuple[bool, str]]:
        with silent_listener() as port:
            hung = asyncio.ensure_future(
                probe(Probe(http=f"http://{LOCAL}:{port}/", timeout_s=2), cwd=".", env={})
            )
            quick = asyncio.ensure_future(probe(Probe(tcp=f"{LOCAL}:{port}"), cwd=".", env={}))
            done, _ = await asyncio.wait({hung, quick}, return_when=asyncio.FIRST_COMPLETED)
            assert done == {quick}  # answered while the other still waits
            return [await quick, await hung]

    quick, hung = asyncio.run(main())
    assert quick[0] is True and hung == (False, "timed out after 2s")


def test_no_probe_configured_reports_instead_of_raising(project: Path) -> None:
    assert run(Probe(), project) == (False, "no probe configured (command, http or tcp)")
