"""Program lookup (aiwgd.tasks.policy.find_program) and its short memory: found
programs are kept for FOUND_FOR_S, a missing one is looked for again every time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aiwgd.config import Config
from aiwgd.tasks import policy


def test_a_program_installed_after_a_miss_is_found_at_once(tmp_path: Path) -> None:
    prog = tmp_path / "tool"
    assert policy.find_program("./tool", str(tmp_path), Config()) is None
    prog.write_text("#!/bin/sh\nexit 0\n")
    prog.chmod(0o755)
    assert policy.find_program("./tool", str(tmp_path), Config()) == str(prog)


def test_a_found_program_is_kept_only_for_a_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prog = tmp_path / "tool"
    prog.write_text("#!/bin/sh\nexit 0\n")
    prog.chmod(0o755)
    assert policy.find_program(str(prog), "/", Config()) == str(prog)
    os.unlink(prog)
    # Within the moment the old answer stands (the spawn then fails with the OS error)...
    assert policy.find_program(str(prog), "/", Config()) == str(prog)
    # ...after it, the lookup is made again.
    monkeypatch.setattr(policy, "FOUND_FOR_S", 0.0)
    assert policy.find_program(str(prog), "/", Config()) is None
