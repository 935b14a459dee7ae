"""Which project a command talks to (issue 8): a --root that is not a directory is an
error, and without --root or $AIWG_ROOT the project is found as git finds its
repository: the nearest directory, from the cwd up, that holds `.aiwg/`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiwgd.config.paths import Paths
from tests.cli.clihelp import aiwg, kill_detached, one_line_error
from tests.utils import BASE_CONFIG, DaemonProc, env_for_tests, write_config


@pytest.fixture
def detached(project: Path) -> Iterator[Path]:
    """A project whose detached daemon (if the test starts one) is gone afterwards."""
    write_config(project, BASE_CONFIG)
    yield project
    kill_detached(project)


@pytest.fixture
def strays() -> Iterator[list[Path]]:
    """Roots where a wrong CLI would start a daemon: any daemon there is killed afterwards."""
    roots: list[Path] = []
    yield roots
    for root in roots:
        kill_detached(root)


def test_start_with_a_missing_root_is_an_error_and_creates_nothing(
    project: Path, strays: list[Path]
) -> None:
    missing = project / "no" / "such" / "dir"
    strays.append(missing)
    for args in (["--root", str(missing), "start"], ["start", "--root", str(missing)]):
        out = aiwg(*args)
        assert out.returncode == 1, out
        assert one_line_error(out) == f"aiwg: --root {missing}: no such directory"
    assert not (project / "no").exists()
    for args in (["status"], ["ping"], ["task", "list"], ["config", "init"], ["stop"]):
        out = aiwg("--root", str(missing), *args)
        assert out.returncode == 1, (args, out)
        assert one_line_error(out) == f"aiwg: --root {missing}: no such directory", args
    assert not (project / "no").exists()


def test_a_root_that_is_a_file_is_an_error(project: Path) -> None:
    afile = project / "notes.txt"
    afile.write_text("hello\n")
    for args in (["start"], ["status"], ["ping"], ["config", "init"]):
        out = aiwg("--root", str(afile), *args)
        assert out.returncode == 1, (args, out)
        assert one_line_error(out) == f"aiwg: --root {afile}: not a directory", args
    assert afile.read_text() == "hello\n"


def test_aiwg_root_from_the_environment_is_checked_too(project: Path, strays: list[Path]) -> None:
    strays.append(project / "gone")
    env = env_for_tests()
    env["AIWG_ROOT"] = str(project / "gone")
    out = aiwg("start", env=env, cwd=project)
    assert out.returncode == 1, out
    assert one_line_error(out) == f"aiwg: AIWG_ROOT={project / 'gone'}: no such directory"
    assert not (project / "gone").exists()


def test_status_ping_and_tasks_from_a_subdirectory(daemon: DaemonProc, tmp_path: Path) -> None:
    sub = daemon.root / "src" / "pkg"
    sub.mkdir(parents=True)
    out = aiwg("status", cwd=sub)  # the fast path
    assert out.returncode == 0, out
    assert out.stdout.startswith(f"aiwgd is running (PID {daemon.pid})"), out.stdout
    assert f"root:    {daemon.root}\n" in out.stdout
    out = aiwg("--json", "status", cwd=sub)
    assert json.loads(out.stdout)["pid"] == daemon.pid
    assert aiwg("ping", cwd=sub).returncode == 0
    out = aiwg("task", "list", cwd=sub)  # typer's path
    assert (out.returncode, out.stdout) == (0, "no tasks\n"), out
    # $AIWG_ROOT and --root still win over the walk up.
    env = env_for_tests()
    env["AIWG_ROOT"] = str(tmp_path)
    assert aiwg("status", cwd=sub, env=env).returncode == 3
    assert aiwg("--root", str(tmp_path), "ping", cwd=sub).returncode == 3
    env["AIWG_ROOT"] = str(daemon.root)
    assert aiwg("ping", cwd=tmp_path, env=env).returncode == 0


def test_nearest_project_wins_and_no_project_means_the_cwd(project: Path) -> None:
    assert not [p for p in project.parents if (p / ".aiwg").exists()], "a project above /tmp"
    outer, inner = project / "outer", project / "outer" / "a" / "inner"
    (inner / "deep").mkdir(parents=True)
    (outer / ".aiwg").mkdir()
    (inner / ".aiwg").mkdir()
    out = aiwg("config", "init", cwd=inner / "deep")
    assert out.stdout == f"wrote {Paths(inner).config_file}\n", out
    out = aiwg("config", "init", cwd=outer / "a")
    assert out.stdout == f"wrote {Paths(outer).config_file}\n", out
    # Nothing holds .aiwg/ above: `config init` (and `start`) use the current directory.
    bare = project / "bare" / "sub"
    bare.mkdir(parents=True)
    out = aiwg("config", "init", cwd=bare)
    assert out.stdout == f"wrote {Paths(bare).config_file}\n", out
    assert not (project / "bare" / ".aiwg").exists()


def test_start_and_stop_from_a_subdirectory_use_the_project(
    detached: Path, strays: list[Path]
) -> None:
    sub = detached / "docs" / "api"
    sub.mkdir(parents=True)
    strays.append(sub)
    out = aiwg("start", cwd=sub)
    assert out.returncode == 0, out
    pid = int(re.fullmatch(r"aiwgd started \(PID (\d+)\)\n", out.stdout).group(1))  # type: ignore[union-attr]
    assert json.loads(Paths(detached).state_file.read_text())["pid"] == pid
    assert not (sub / ".aiwg").exists()
    out = aiwg("stop", cwd=sub)
    assert (out.returncode, out.stdout) == (0, f"aiwgd stopped (PID {pid})\n"), out
