"""aiwgd.client as a user's script meets it: one import package, nothing heavy, one version."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import aiwgd
from tests.utils import DaemonProc, daemon_in_tmp, env_for_tests

# What a script importing the client must not pay for: the daemon's server side, the
# CLI's framework, and the metadata reader behind aiwgd.__version__ (~20 ms).
HEAVY = (
    "asyncio",
    "jsonrpcserver",
    "watchfiles",
    "psutil",
    "croniter",
    "typer",
    "click",
    "pydantic",
    "importlib.metadata",
    "aiwgd.daemon",
    "aiwgd.rpc",
    "aiwgd.cli",
)
# Everything of ours the client may load: the client and the project paths it resolves.
CLIENT_MODULES = {"aiwgd", "aiwgd.client", "aiwgd.config", "aiwgd.config.paths"}

USER_SCRIPT = """\
import json
import sys

import cli  # the project's own modules, as its scripts import them
import config
from aiwgd.client import Client, ClientError, DaemonNotRunning, RpcError

with Client(sys.argv[1], timeout=10) as c:
    pong = c.call("ping")
    status = c.call("daemon.status")
errors = [e.__name__ for e in (ClientError, DaemonNotRunning, RpcError)]
print(json.dumps({"ping": pong, "pid": status["pid"], "root": status["root"],
                  "config": config.WHO, "cli": cli.WHO, "errors": errors}))
"""


@pytest.fixture(scope="module")
def d() -> Iterator[DaemonProc]:
    with daemon_in_tmp() as daemon:
        yield daemon


def run_python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_for_tests(),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def test_script_beside_a_config_module_and_a_cli_package(d: DaemonProc, tmp_path: Path) -> None:
    # Most projects have a config.py and a cli/ package; running a script from the
    # project puts them first on sys.path, ahead of anything installed.
    (tmp_path / "config.py").write_text('"""The project\'s settings."""\nWHO = "user config"\n')
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "__init__.py").write_text('"""The project\'s CLI."""\nWHO = "user cli"\n')
    (tmp_path / "status.py").write_text(USER_SCRIPT)

    out = run_python(["status.py", str(d.root)], cwd=tmp_path)

    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "ping": "pong",
        "pid": d.pid,
        "root": str(d.root),
        "config": "user config",
        "cli": "user cli",
        "errors": ["ClientError", "DaemonNotRunning", "RpcError"],
    }


def test_importing_the_client_loads_nothing_heavy(tmp_path: Path) -> None:
    code = textwrap.dedent("""\
        import json, sys
        before = set(sys.modules)
        import aiwgd.client
        print(json.dumps(sorted(set(sys.modules) - before)))
    """)
    out = run_python(["-c", code], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)

    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == [], f"importing aiwgd.client loaded {heavy}"
    ours = {m for m in loaded if m == "aiwgd" or m.startswith("aiwgd.")}
    assert ours <= CLIENT_MODULES, f"importing aiwgd.client loaded {sorted(ours - CLIENT_MODULES)}"


def test_one_version_from_the_distribution(d: DaemonProc) -> None:
    assert aiwgd.__version__ == importlib.metadata.version("aiwgd")
    assert d.call("rpc.discover")["info"]["version"] == aiwgd.__version__


def test_version_without_distribution_metadata(tmp_path: Path) -> None:
    # A source tree on PYTHONPATH that was never installed still has a (PEP 440) version.
    code = textwrap.dedent("""\
        import importlib.metadata as md

        def missing(name):
            raise md.PackageNotFoundError(name)

        md.version = missing
        import aiwgd
        print(aiwgd.__version__)
    """)
    out = run_python(["-c", code], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0+unknown"
