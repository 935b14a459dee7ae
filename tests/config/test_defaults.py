"""The default config suits any project (issue 8): no cron jobs that do nothing visible,
no watch on folders a project may not have. What a user meets on a first start."""

from __future__ import annotations

import json
from pathlib import Path

from aiwgd.config import Paths, defaults
from tests.cli.clihelp import aiwg
from tests.conftest import DaemonFactory


def test_first_start_in_a_bare_project(project: Path, start_daemon: DaemonFactory) -> None:
    # A project with none of src/ or test/: the daemon writes the defaults and starts.
    d = start_daemon(write=False)
    status = json.loads(aiwg("--root", str(project), "--json", "status").stdout)
    watcher, scheduler = status["subsystems"]["watcher"], status["subsystems"]["scheduler"]
    assert watcher["state"] == "watching" and watcher["missing"] == [], watcher
    assert watcher["watching"] == [".aiwg"], watcher
    assert scheduler["jobs"] == 0 and scheduler["next_fire"] is None, scheduler
    human = aiwg("--root", str(project), "status").stdout
    assert "missing" not in human, human
    written = json.loads(Paths(project).config_file.read_text())
    assert written["schedule"]["jobs"] == []
    assert [p["path"] for p in written["watch"]["paths"]] == [".aiwg/"]
    assert d.call("ping") == "pong"


def test_defaults_schedule_nothing_and_watch_the_projects_own_dir() -> None:
    cfg = defaults()
    assert cfg.schedule.enabled is True and cfg.schedule.jobs == []
    assert cfg.watch.enabled is True
    assert [(p.path, p.ignore) for p in cfg.watch.paths] == [
        (".aiwg/", ["*.tmp", "working/**", "daemon/**"])
    ]
