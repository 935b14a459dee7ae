"""`aiwg --show-completion SHELL` and `aiwg --install-completion SHELL`: a shell named.

typer's own --show-completion / --install-completion take no value when shellingham is
installed (it always is, typer depends on it): they detect the shell that runs `aiwg`.
Detection fails under a script, an IDE or a container entry point, and a user who sets
up another shell's completion needs to name it; these two forms do that, with typer's
own scripts and install locations, before typer parses anything.
"""

from __future__ import annotations

import sys

# typer exports these only through a private module (typer.completion re-exports them
# implicitly); they write the same scripts and files as typer's own options.
from typer._completion_shared import get_completion_script, install

OPTIONS = ("--show-completion", "--install-completion")
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
PROG, COMPLETE_VAR = "aiwg", "_AIWG_COMPLETE"  # the variable the scripts set to call aiwg


def named_shell(argv: list[str]) -> str | None:
    """The shell in `aiwg --show-completion SHELL` (or --install-completion), else None."""
    if len(argv) == 2 and argv[0] in OPTIONS:
        return argv[1]
    if len(argv) == 1 and argv[0].startswith(tuple(f"{o}=" for o in OPTIONS)):
        return argv[0].partition("=")[2]
    return None


def run(option: str, shell: str) -> int:
    """Print or install the completion script for `shell`; the exit code."""
    if shell not in SHELLS:
        print(
            f"aiwg: {shell!r} is not a shell aiwg completes ({', '.join(SHELLS)})", file=sys.stderr
        )
        return 2
    if option.startswith("--show-completion"):
        print(get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell))
        return 0
    _, path = install(shell=shell, prog_name=PROG, complete_var=COMPLETE_VAR)
    print(f"{shell} completion installed in {path}")
    print("Completion will take effect once you restart the terminal")
    return 0
