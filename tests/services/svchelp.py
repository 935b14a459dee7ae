"""Helpers for the services tests: small Python programs written into the project and
service configs that run them with this interpreter."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import psutil

from tests.utils import DaemonProc, wait_for


def script(root: Path, name: str, body: str) -> str:
    """Write `body` as ROOT/NAME.py; returns its path."""
    path = root / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def service(path: str, *args: str, **extra: Any) -> dict[str, Any]:
    """A service config running `python PATH ARGS` (fast defaults for tests)."""
    cfg: dict[str, Any] = {
        "command": [sys.executable, path, *args],
        "stop_grace_s": 2,
        "backoff": {"initial_s": 0.05, "max_s": 0.5, "jitter": 0},
    }
    cfg.update(extra)
    return cfg


# Runs until told to stop; prints a line saying it is up.
SLEEPER = """
import os, sys, time
print("up", os.getpid(), sys.argv[1:], flush=True)
while True:
    time.sleep(1)
"""


def get(d: DaemonProc, name: str) -> dict[str, Any]:
    inst: dict[str, Any] = d.call("service.get", name=name)["instances"][0]
    return inst


def wait_state(d: DaemonProc, name: str, *states: str, timeout: float = 10) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: (i := get(d, name))["state"] in states and i,
        timeout,
        f"{name} to be {'/'.join(states)}",
    )
    return found


def marked(root: Path, name: str | None = None) -> list[psutil.Process]:
    """Live processes carrying a service mark of this project root."""
    out = []
    for p in psutil.process_iter():
        try:
            env = p.environ()
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        ours = env.get("AIWG_ROOT") == str(root) and "AIWG_SERVICE" in env
        if ours and (name is None or env["AIWG_SERVICE"] == name):
            out.append(p)
    return out
