"""What the doctor tests share: `aiwg doctor` run as a user runs it, and its verdicts."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiwgd.config.paths import Paths
from tests.utils import BASE_CONFIG, deep_merge, env_for_tests, run_cli, write_config

# An agent that says, in its --help, what Claude Code's says about its output formats.
STREAM_JSON_HELP = "--output-format <format>  text, json or stream-json"
PLAIN_HELP = "usage: agent [-p PROMPT]  (prints its answer as text)"


def doctor(
    root: Path,
    *args: str,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
    preexec_fn: Callable[[], None] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`aiwg --root ROOT doctor ARGS`; `prefix` runs it under a wrapper (unshare ...),
    `preexec_fn` in the child before it starts (limits), `cwd` elsewhere than here
    (`python -m` puts the cwd first on the module path)."""
    if not prefix and preexec_fn is None and cwd is None:
        return run_cli(root, "doctor", *args, env=env)
    return subprocess.run(
        [*prefix, sys.executable, "-m", "aiwgd.cli", "--root", str(root), "doctor", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env or env_for_tests(),
        stdin=subprocess.DEVNULL,
        preexec_fn=preexec_fn,
        cwd=cwd,
    )


def verdicts(out: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    """The checks of a `doctor --json` run by name (its stdout must be one document)."""
    assert "Traceback" not in out.stderr, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] == (out.returncode == 0), out
    return {c["name"]: c for c in doc["checks"]}


def line_of(out: subprocess.CompletedProcess[str], name: str) -> str:
    """The human report's line for check `name` (ASCII marks: stdout is a pipe)."""
    for line in out.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].startswith(name + "  "):
            return line
    raise AssertionError(f"no line for {name!r} in:\n{out.stdout}")


def fix_of(out: subprocess.CompletedProcess[str], name: str) -> str:
    """The `fix:` line printed under check `name`'s line."""
    lines = out.stdout.splitlines()
    i = lines.index(line_of(out, name))
    fix = lines[i + 1].strip()
    assert fix.startswith("fix: "), lines[i : i + 2]
    return fix.removeprefix("fix: ")


def fake_agent(where: Path, help_text: str, name: str = "agent") -> Path:
    """An executable agent program whose --help prints `help_text`."""
    where.mkdir(parents=True, exist_ok=True)
    path = where / name
    path.write_text(f"#!{sys.executable}\nprint({help_text!r})\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def project_config(root: Path, config: dict[str, Any] | None = None) -> None:
    """The quiet test config plus `config`, written as the daemon would write it: the
    project's .aiwg/ private (write_config leaves the umask's 0755 and 0644)."""
    path = write_config(root, deep_merge(BASE_CONFIG, config or {}))
    make_private(Paths(root))
    assert path.exists()


def make_private(paths: Paths) -> None:
    os.chmod(paths.aiwg_dir, 0o700)
    os.chmod(paths.config_file, 0o600)
