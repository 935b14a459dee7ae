"""Each `aiwg` command builds and imports only itself (cli/lazy.py, issue 9), while
`--help` and shell completion still show every command as before."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main

from aiwgd.cli import commands
from aiwgd.cli.lazy import AppGroup, LazyGroup, app_infos
from aiwgd.cli.main import app
from tests.cli.clihelp import aiwg
from tests.utils import REPO, DaemonProc, env_for_tests, run_python

# Every command module (cli/commands.py) and what each command of theirs may import.
COMMAND_MODULES = sorted(set(commands.WHERE.values()))
OTHER_CLI = {"aiwgd.cli.leftovers", "aiwgd.cli.render", "aiwgd.cli.tasklist"}
HEAVY = {"pydantic", "typer._adapters", "aiwgd.config.model", "psutil", "asyncio"}


def root_group() -> LazyGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)
    return group


def help_text(group: Any, name: str) -> str:
    return str(group.get_help(group.context_class(group, info_name=name)))


def test_every_command_of_every_module_is_in_the_table() -> None:
    for module in COMMAND_MODULES:
        holder = typer.Typer()
        importlib.import_module(module).register(holder)
        defined = set(app_infos(holder))
        listed = {name for name, where in commands.WHERE.items() if where == module}
        assert defined == listed, module


def test_help_lists_every_command_as_the_built_commands_would() -> None:
    lazy = help_text(root_group(), "aiwg")  # summaries: nothing built
    built = root_group()
    for name in built.list_commands(None):
        built.get_command(None, name)
    assert help_text(built, "aiwg") == lazy
    section = lazy.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in section] == list(commands.WHERE)
    assert all(len(line.split()) > 1 for line in section)  # each with its short help
    # The groups' own --help (aiwg task --help) lists their commands the same way.
    for name in commands.WHERE:
        group = root_group().get_command(None, name)
        if isinstance(group, AppGroup):
            lazy_sub = help_text(group, name)
            for sub in group.list_commands(None):
                group.get_command(None, sub)
            assert help_text(group, name) == lazy_sub, name


def test_help_as_a_user_sees_it() -> None:
    out = aiwg("--help")
    assert out.returncode == 0, out
    rows = out.stdout.split("Commands:\n", 1)[1].splitlines()
    assert [r.split()[0] for r in rows] == list(commands.WHERE)
    task = aiwg("task", "--help")
    assert task.returncode == 0, task
    rows = {" ".join(r.split()) for r in task.stdout.splitlines()}  # column widths vary
    for line in ("submit Queue an agent prompt.", "list Tasks, newest first"):
        assert any(r.startswith(line) for r in rows), task.stdout


def complete(words: str) -> list[str]:
    cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    env = {
        **env_for_tests(),
        "_AIWG_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": cword,
    }
    out = aiwg(env=env)
    assert out.returncode == 0, out
    return out.stdout.split()


def test_completion_offers_every_command() -> None:
    assert complete("aiwg ") == list(commands.WHERE)
    from aiwgd.cli.tasks import task_app

    assert complete("aiwg task ") == list(app_infos(task_app))
    assert complete("aiwg dlq ") == ["list", "replay", "purge"]


def test_a_typo_still_gets_suggestions() -> None:
    out = aiwg("stauts")
    assert out.returncode == 2
    assert "No such command 'stauts'. Did you mean 'status'" in out.stderr, out
    out = aiwg("task", "lsit")
    assert out.returncode == 2 and "Did you mean 'list'" in out.stderr, out


_LOADED = """
import atexit, json, sys
def report():
    with open({out!r}, "w") as fh:
        json.dump(sorted(sys.modules), fh)
atexit.register(report)
sys.argv = ["aiwg", *{args!r}]
from aiwgd.cli import fastpath
fastpath.entry()
"""


def loaded(tmp_path: Path, *args: str) -> set[str]:
    """The modules `aiwg ARGS` had imported when it exited (it must succeed)."""
    out_file = tmp_path / "modules.json"
    code = _LOADED.format(out=str(out_file), args=list(args))
    run = run_python(code, cwd=REPO)
    assert run.returncode == 0, run
    return set(json.loads(out_file.read_text()))


@pytest.mark.parametrize(
    ("args", "own"),
    [
        (["task", "list"], {"aiwgd.cli.tasks", "aiwgd.cli.render", "aiwgd.cli.tasklist"}),
        (["task", "run", "--priority", "5", "--retries", "1", "--", "true"], {"aiwgd.cli.tasks"}),
        (["events", "-n", "5"], {"aiwgd.cli.events", "aiwgd.cli.render"}),
        (["dlq", "list"], {"aiwgd.cli.events", "aiwgd.cli.render"}),
        (["schedule", "list"], {"aiwgd.cli.schedule", "aiwgd.cli.render"}),
        (["automation", "status"], {"aiwgd.cli.automation", "aiwgd.cli.render"}),
        (["stop", "--help"], {"aiwgd.cli.daemon"}),
        (["--timeout", "2", "rpc", "ping"], {"aiwgd.cli.daemon"}),
    ],
)
def test_a_command_imports_only_its_own_module(
    daemon: DaemonProc, tmp_path: Path, args: list[str], own: set[str]
) -> None:
    modules = loaded(tmp_path, "--root", str(daemon.root), *args)
    cli = {m for m in modules if m in set(COMMAND_MODULES) | OTHER_CLI}
    # Its own command module, and at most the helpers it may need for its output.
    assert own & set(COMMAND_MODULES) <= cli <= own, args
    assert not HEAVY & modules, HEAVY & modules  # no pydantic: plain values parse without


def test_config_show_imports_the_config_and_no_command_module(tmp_path: Path) -> None:
    # Answered by the fast path (cli/fastpath.py): not even typer.
    modules = loaded(tmp_path, "--root", str(tmp_path), "config", "show")
    assert {m for m in modules if m in COMMAND_MODULES} == set()
    assert "aiwgd.config.model" in modules and "typer" not in modules
