"""Config section `agent`: how prompt tasks run, and what command tasks may run.

Kept beside config/tasks.py (the store's section) in its own module so the supervisor
owns it. `{prompt}` and `{agent}` are replaced inside each argv element; nothing ever
goes through a shell.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiwgd.config.limits import Limits
from aiwgd.config.schema import spec

ENV_KEY_ERROR = "is not a valid environment variable name (non-empty, no = or NUL)"


@dataclass
class AgentSection:
    command: list[str] = spec(
        factory=lambda: ["claude", "-p", "{prompt}"],
        min_len=1,
        doc="argv of the agent; {prompt} and {agent} are replaced per element",
    )
    agent_args: list[str] = spec(
        factory=lambda: ["--agent", "{agent}"], doc="appended when a task names an agent"
    )
    env: dict[str, str] = spec(
        factory=dict, doc="extra environment for every task; its PATH finds programs"
    )
    allowed_commands: list[str] = spec(
        factory=list,
        doc="programs a command task may run; empty = any. A name (or a glob of names) "
        "allows only what it finds on the daemon's PATH; a pattern with / is a glob over "
        "the program's resolved absolute path",
    )
    allowed_roots: list[str] = spec(
        factory=list, doc="absolute dirs a task cwd may be in besides the project root"
    )
    retry_backoff_seconds: float = spec(
        5, gt=0, le=3_600, doc="first retry delay; doubles per attempt"
    )
    retry_backoff_max_seconds: float = spec(300, gt=0, le=86_400, doc="longest retry delay")
    limits: Limits | None = spec(
        None, doc="resource limits of every prompt task without its own (not commands)"
    )

    def validate(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.command and not self.command[0]:
            out.append(("command[0]", "must name the agent program"))
        if not any("{prompt}" in a for a in self.command):
            out.append(
                (
                    "command",
                    'must contain "{prompt}" in one element (e.g. ["claude", "-p", "{prompt}"])',
                )
            )
        for key in self.env:
            if not key or "=" in key or "\0" in key:
                out.append((f"env.{key}", ENV_KEY_ERROR))
        for i, root in enumerate(self.allowed_roots):
            if not root.startswith(("/", "~")):
                out.append((f"allowed_roots[{i}]", f'"{root}" is not an absolute path'))
        return out
