"""`aiwg doctor` on the interpreter and the installed packages, its marks on a terminal,
and what it imports (the CLI stays light: no daemon code, no asyncio)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from aiwgd.cli.doctor.checks_env import EPOCH_FLOOR, judge_clock, release, satisfies
from tests.doctor.helpers import doctor, fix_of, line_of, project_config, verdicts
from tests.utils import REPO, env_for_tests, run_python

# What an install of a newer aiwgd would declare; found first on the path, it is the
# metadata the doctor reads (importlib.metadata takes the first distribution found).
NEWER_METADATA = """\
Metadata-Version: 2.1
Name: aiwgd
Version: 9.9.0
Requires-Python: >=3.99
Requires-Dist: psutil>=999
Requires-Dist: aiwg-no-such-dependency>=1.0
Requires-Dist: pytest>=999; extra == "test"
"""


def test_bounds_come_from_the_installed_metadata(project: Path, tmp_path: Path) -> None:
    info = tmp_path / "site" / "aiwgd-9.9.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(NEWER_METADATA)
    env = env_for_tests()
    env["PYTHONPATH"] = f"{info.parent}{os.pathsep}{env['PYTHONPATH']}"
    project_config(project)
    out = doctor(project, env=env, cwd=project)  # not the repo, which holds its egg-info
    assert out.returncode == 1, out
    py = line_of(out, "python")
    assert py.startswith("[FAIL]") and "aiwgd needs >=3.99" in py, py
    deps = line_of(out, "dependencies")
    assert deps.startswith("[FAIL]")
    assert "psutil" in deps and "does not meet >=999" in deps
    assert "aiwg-no-such-dependency is not installed" in deps
    assert "pytest" not in deps  # an extra's requirement is not the daemon's
    assert fix_of(out, "dependencies") == (
        f"{sys.executable} -m pip install 'psutil>=999' 'aiwg-no-such-dependency>=1.0'"
    )


def test_the_real_install_meets_its_bounds(project: Path) -> None:
    project_config(project)
    checks = verdicts(doctor(project, "--json"))
    assert checks["python"]["status"] == "ok"
    assert checks["dependencies"]["status"] == "ok", checks["dependencies"]


@pytest.mark.parametrize(
    ("version", "spec", "good"),
    [
        ("5.0.9", "==5.0.9", True),
        ("5.0.10", "==5.0.9", False),
        ("0.21", ">=0.21", True),
        ("0.20.9", ">=0.21", False),
        ("1.2rc1", ">=1.2", True),  # the release numbers decide
        ("2.0", ">=1.0,<2", False),
        ("1.4.2", "~=1.4", True),
        ("2.0", "~=1.4", False),
        ("3.11.7", ">=3.11", True),
        ("1.0", ">=banana", None),
    ],
)
def test_satisfies(version: str, spec: str, good: bool | None) -> None:
    assert satisfies(version, spec) is good
    assert release("6.1.0.post1") == (6, 1, 0)


_MODULES = """
import atexit, json, sys
atexit.register(lambda: json.dump(sorted(sys.modules), open({out!r}, "w")))
sys.argv = ["aiwg", "--root", {root!r}, "doctor"]
from aiwgd.cli import fastpath
fastpath.entry()
"""


def test_doctor_imports_no_daemon_machinery(project: Path, tmp_path: Path) -> None:
    project_config(project)
    out_file = tmp_path / "modules.json"
    run = run_python(_MODULES.format(out=str(out_file), root=str(project)), cwd=REPO)
    assert run.returncode == 0, run
    modules = set(json.loads(out_file.read_text()))
    heavy = {"asyncio", "jsonrpcserver", "watchfiles", "psutil", "aiwgd.daemon", "aiwgd.rpc"}
    assert not heavy & modules, heavy & modules


def test_a_terminal_gets_marks(project: Path) -> None:
    project_config(project)
    leader, follower = pty.openpty()
    env = {**env_for_tests(), "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "aiwgd.cli", "--root", str(project), "doctor"],
            stdout=follower,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=30,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the writer is gone and everything was read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    shown = b"".join(chunks).decode()
    assert proc.returncode == 0, proc.stderr
    assert "✓ python " in shown, shown
    assert "[ok]" not in shown


def test_clock_verdicts() -> None:
    # The wall clock cannot be stepped or set back for one test without disturbing the
    # machine (no time namespace covers CLOCK_REALTIME): the readings are given here.
    # A real heartbeat from the future is test_daemon.py's.
    now = EPOCH_FLOOR + 86_400.0
    assert judge_clock(0.01, now, EPOCH_FLOOR, None).status == "ok"
    stepped = judge_clock(3.0, now, EPOCH_FLOOR, None)
    assert stepped.status == "warn"
    assert stepped.message.startswith("the wall clock moved +3.00s against the monotonic")
    early = judge_clock(0.0, 978_307_200.0, EPOCH_FLOOR, None)  # 2001-01-01
    assert early.status == "fail"
    assert early.message == "the wall clock says 2001-01-01, before aiwgd was built (2025-01-01)"
    assert early.fix.startswith("enable time sync")
