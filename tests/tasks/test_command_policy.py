"""`agent.allowed_commands` and the task cwd hold for what really runs, and when.

Issue 8: the allow list compared base names, so a path (`/tmp/x/true`), a relative path
(`../evil/true`) or a task env `PATH` ran another program of an allowed name; and a
queued task's cwd was checked at submit only, so one that became a symlink to /etc ran
there. Now a bare name allows only the program that name resolves to on the daemon's
PATH, the task's PATH never picks its program, a glob matches the resolved absolute
path, and the cwd is checked again, resolved, when the task starts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from aiwgd.client import RpcError
from tests.conftest import DaemonFactory
from tests.taskhelp import prog, submit, task_config, wait_terminal
from tests.utils import DaemonProc, wait_for

FORBIDDEN = -32005
TRUE = shutil.which("true")


def impostor(path: Path, marker: Path) -> Path:
    """An executable named like an allowed program that leaves a marker if it runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\nopen({str(marker)!r}, 'w').write('ran')\n")
    path.chmod(0o755)
    return path


def policy_daemon(start_daemon: DaemonFactory, allowed: list[str]) -> DaemonProc:
    return start_daemon(task_config(agent={"allowed_commands": allowed}))


def refused(d: DaemonProc, **params: Any) -> str:
    stored = d.call("task.stats")["stored"]
    with pytest.raises(RpcError) as info:
        d.call("task.submit", **params)
    assert info.value.code == FORBIDDEN, info.value.message
    assert d.call("task.stats")["stored"] == stored  # nothing stored
    return info.value.message


@pytest.fixture
def only_true(start_daemon: DaemonFactory, project: Path) -> DaemonProc:
    """allowed_commands ["true"], and impostors named true in x/ and evil/."""
    impostor(project / "x" / "true", project / "impostor-ran")
    impostor(project / "evil" / "true", project / "impostor-ran")
    (project / "sub").mkdir()
    return policy_daemon(start_daemon, ["true"])


def test_bare_name_refuses_an_absolute_path_to_another_program(
    only_true: DaemonProc, project: Path
) -> None:
    evil = project / "x" / "true"
    msg = refused(only_true, command=[str(evil)])
    assert "command[0]" in msg and str(evil) in msg and "allowed_commands" in msg
    assert TRUE is not None and TRUE in msg  # says what the name does allow
    # The program the name resolves to, given by its path, is the same program.
    assert wait_terminal(only_true, submit(only_true, [TRUE])["id"])["state"] == "completed"


def test_bare_name_refuses_a_relative_path_to_another_program(
    only_true: DaemonProc, project: Path
) -> None:
    msg = refused(only_true, command=["../evil/true"], cwd="sub")
    assert "command[0]" in msg and "../evil/true" in msg and f"{project}/evil/true" in msg


def test_task_path_never_chooses_the_program(only_true: DaemonProc, project: Path) -> None:
    path = f"{project / 'x'}:/usr/bin:/bin"
    task = submit(only_true, ["true"], env={"PATH": path})
    assert wait_terminal(only_true, task["id"])["state"] == "completed"
    assert not (project / "impostor-ran").exists()  # /usr/bin/true ran, not x/true


def test_task_path_still_reaches_the_child(start_daemon: DaemonFactory, project: Path) -> None:
    d = policy_daemon(start_daemon, [sys.executable])
    script, out = project / "printenv.py", project / "env.json"
    script.write_text("import json,os,sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))")
    path = f"{project}/bin:/usr/bin:/bin"
    task = submit(d, [sys.executable, str(script), str(out)], env={"PATH": path})
    assert wait_terminal(d, task["id"])["state"] == "completed"
    assert json.loads(out.read_text())["PATH"] == path


def test_glob_matches_the_resolved_absolute_path(
    start_daemon: DaemonFactory, project: Path
) -> None:
    marker = project / "impostor-ran"
    ok = impostor(project / "tools" / "ok", project / "ok-ran")
    impostor(project / "x" / "true", marker)
    d = policy_daemon(start_daemon, [f"{project}/tools/*"])
    assert wait_terminal(d, submit(d, ["tools/ok"])["id"])["state"] == "completed"
    assert (project / "ok-ran").exists()
    assert wait_terminal(d, submit(d, [str(ok)])["id"])["state"] == "completed"
    msg = refused(d, command=["tools/../x/true"])
    assert "command[0]" in msg and f"{project}/x/true" in msg
    refused(d, command=["true"])  # /usr/bin/true is not under tools/
    assert not marker.exists()


def test_queued_task_whose_cwd_became_a_symlink_out_of_the_root_does_not_run(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(cap=1))
    gate, out, work = project / "gate", project / "cwd.txt", project / "work"
    work.mkdir()
    blocker = submit(d, prog("--gate", str(gate)))
    wait_for(lambda: d.call("task.get", id=blocker["id"])["state"] == "running", 10, "blocker")
    code = f"import os; open({str(out)!r}, 'w').write(os.getcwd())"
    queued = submit(d, [sys.executable, "-c", code], cwd="work")
    assert queued["cwd"] == str(work)
    work.rename(project / "work.old")
    os.symlink("/etc", work)  # the checked cwd now leads out of the project
    gate.touch()
    ended = wait_terminal(d, queued["id"])
    assert ended["state"] == "failed", ended
    assert "cwd" in ended["error"] and "/etc" in ended["error"], ended["error"]
    assert "allowed_roots" in ended["error"]
    assert not out.exists()  # it never started there
    # A cwd that is still fine at start runs as before.
    work.unlink()
    (project / "work.old").rename(work)
    again = submit(d, [sys.executable, "-c", code], cwd="work")
    assert wait_terminal(d, again["id"])["state"] == "completed"
    assert out.read_text() == str(work)


def test_queued_task_whose_cwd_vanished_fails_with_the_reason(
    start_daemon: DaemonFactory, project: Path
) -> None:
    d = start_daemon(task_config(cap=1))
    gate, work = project / "gate", project / "gone"
    work.mkdir()
    blocker = submit(d, prog("--gate", str(gate)))
    wait_for(lambda: d.call("task.get", id=blocker["id"])["state"] == "running", 10, "blocker")
    queued = submit(d, [sys.executable, "-c", "pass"], cwd="gone")
    work.rmdir()
    gate.touch()
    ended = wait_terminal(d, queued["id"])
    assert ended["state"] == "failed"
    assert "cwd" in ended["error"] and "does not exist" in ended["error"], ended["error"]
