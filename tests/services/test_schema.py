"""Every service.* method answers what rpc.discover says it answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema

from tests.conftest import DaemonFactory
from tests.services.svchelp import SLEEPER, script, service, wait_state


def test_service_results_match_their_declared_schemas(
    start_daemon: DaemonFactory, project: Path
) -> None:
    path = script(project, "sleeper", SLEEPER)
    hc = {"tcp": "127.0.0.1:9", "interval_s": 0.1, "action": "report"}
    services = {
        "web": service(path, instances=2, health_check=hc),
        "crash": service("/nonexistent", start_limit={"burst": 1, "interval_s": 60}),
    }
    d = start_daemon(config={"services": services})
    wait_state(d, "web:1", "ready")
    wait_state(d, "crash", "gave_up")
    schemas = {m["name"]: m["result"]["schema"] for m in d.call("rpc.discover")["methods"]}

    def check(method: str, **params: Any) -> None:
        result = d.call(method, **params)
        errors = list(jsonschema.Draft7Validator(schemas[method]).iter_errors(result))
        assert not errors, f"{method}: {[e.message[:200] for e in errors]}"

    check("service.list")
    check("service.get", name="web")
    check("service.get", name="crash")
    check("service.logs", name="web", lines=5)
    check("service.signal", name="web:0", signal="CONT")
    check("service.restart", name="web:1")
    check("service.stop", name="all")
    check("service.get", name="web:1")
    check("service.start", name="crash")
