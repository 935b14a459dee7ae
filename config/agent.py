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
OUTPUTS = ("text", "stream-json")


@dataclass
class BudgetSection:
    """What agents may spend (stream-json output only: the cost comes from it)."""

    per_task_usd: float | None = spec(
        None, gt=0, le=1_000_000, doc="a prompt task whose cost passes this is stopped"
    )
    per_day_usd: float | None = spec(
        None,
        gt=0,
        le=1_000_000,
        doc="once a UTC day's agent spend reaches this, new prompt tasks wait queued",
    )


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
    output: str = spec(
        "text",
        choices=OUTPUTS,
        doc="what the agent prints: text, or stream-json (Claude Code's --output-format "
        "stream-json: session id, answer, tokens and cost are read from it)",
    )
    budget: BudgetSection = spec(factory=BudgetSection, doc="spending limits (stream-json)")
    executor: str | None = spec(
        None,
        min_len=1,
        doc="where prompt tasks run unless they say (default: tasks.default_executor)",
    )
    isolate: str | None = spec(
        None,
        choices=("worktree", "none"),
        doc='default isolation of prompt tasks: "worktree" runs each in its own git '
        "worktree of the project (.aiwg/worktrees/<task-id>)",
    )
    worktree_prefix: str = spec(
        "aiwg/", min_len=1, max_len=100, doc="branch of an isolated task: <prefix><task-id>"
    )
    resume_args: list[str] = spec(
        factory=lambda: ["--resume", "{session}"],
        doc="appended to the agent argv of a task resuming another's session ({session})",
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
        budget = self.budget.per_task_usd is not None or self.budget.per_day_usd is not None
        if budget and self.output != "stream-json":
            # A budget that could never act would only look like a limit.
            out.append(("budget", 'needs agent.output "stream-json": the cost is read from it'))
        return out
