"""Config errors with key paths (start-up refused, reload refused) and reload that
keeps untouched services running with the same PID."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from aiwgd.client import ClientError
from tests.conftest import DaemonFactory
from tests.services.svchelp import SLEEPER, get, script, service, wait_state
from tests.utils import BASE_CONFIG, DaemonProc, alive, deep_merge, run_cli, write_config

PY = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.mark.parametrize(
    ("services", "message"),
    [
        (
            {"a": {"command": PY, "depends_on": ["b"]}, "b": {"command": PY, "depends_on": ["a"]}},
            "services.a.depends_on: dependency cycle a -> b -> a",
        ),
        (
            {"web": {"command": PY, "depends_on": {"db": "ready"}}},
            'services.web.depends_on.db: unknown service "db"',
        ),
        ({"web": {"command": []}}, "services.web.command: must have at least 1 items"),
        (
            {"web": {"command": PY, "stop_signal": "TERMINATE"}},
            'services.web.stop_signal: "TERMINATE" is not a signal name',
        ),
        ({"web": {"command": PY, "ready": {"log_line": "(("}}}, "services.web.ready.log_line"),
        (
            {"web": {"command": PY, "backoff": {"max_s": -1}}},
            "services.web.backoff.max_s: -1.0 is out of range",
        ),
        ({"a:b": {"command": PY}}, "services.a:b: a service name is"),
    ],
)
def test_bad_config_refused_with_key_path(
    project: Path, services: dict[str, Any], message: str
) -> None:
    write_config(project, deep_merge(BASE_CONFIG, {"services": services}))
    d = DaemonProc(project).start(wait=False)
    assert d.wait_exit(20) != 0
    assert message in d.stderr()
    assert "Traceback" not in d.stderr()


def test_reload_keeps_untouched_restarts_changed_stops_removed_starts_added(
    start_daemon: DaemonFactory, project: Path
) -> None:
    path = script(project, "sleeper", SLEEPER)
    services = {"keep": service(path, "k"), "change": service(path, "c"), "gone": service(path)}
    d = start_daemon(config={"services": services})
    pids = {n: wait_state(d, n, "ready")["pid"] for n in services}
    new = {"keep": service(path, "k"), "change": service(path, "c2"), "added": service(path)}
    write_config(project, deep_merge(BASE_CONFIG, {"services": new}))
    d.call("daemon.reload")
    assert get(d, "keep")["pid"] == pids["keep"]
    assert alive(pids["keep"])
    changed = wait_state(d, "change", "ready")
    assert changed["pid"] != pids["change"] and not alive(pids["change"])
    assert not alive(pids["gone"])
    with pytest.raises(ClientError, match="no service 'gone'"):
        d.call("service.get", name="gone")
    wait_state(d, "added", "ready")
    # A bad file changes nothing, and says why with the key path.
    bad = {"keep": service(path, "k", depends_on=["nope"])}
    write_config(project, deep_merge(BASE_CONFIG, {"services": bad}))
    with pytest.raises(
        ClientError, match=r'services\.keep\.depends_on\.nope: unknown service "nope"'
    ):
        d.call("daemon.reload")
    assert get(d, "keep")["pid"] == pids["keep"]
    assert get(d, "added")["state"] == "ready"


def test_unknown_service_is_not_found(daemon: DaemonProc) -> None:
    with pytest.raises(ClientError) as err:
        daemon.call("service.start", name="nope")
    assert err.value.code == -32001
    with pytest.raises(ClientError) as err:
        daemon.call("service.signal", name="all", signal="BOGUS")
    assert err.value.code == -32602
    res = run_cli(daemon.root, "service", "start", "nope")
    assert res.returncode != 0
    assert "no service 'nope'" in res.stderr
    assert "Traceback" not in res.stderr
