"""Config section `tasks`: what an interrupted task becomes, retention, durability.

The supervisor's `agent` section lives beside it, in config/agent.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiwgd.config.schema import spec

# Kept here (stdlib only) rather than imported from aiwgd.tasks.model: the CLI loads this.
POLICIES = ("requeue", "fail")


@dataclass
class OnInterrupt:
    """Per kind of task, the default of a task's own `on_interrupt`."""

    prompt: str = spec(
        "fail",
        choices=POLICIES,
        doc="an agent prompt may have edited files: by default it never silently runs again",
    )
    command: str = spec("requeue", choices=POLICIES, doc="a command runs again if it has a retry")


@dataclass
class TaskGroup:
    """A named group of tasks (task.submit `group`) with its own cap."""

    max_parallel: int = spec(
        1, ge=1, le=10_000, doc="tasks of the group running at once (within the global cap)"
    )
    executor: str | None = spec(
        None, min_len=1, doc="where the group's tasks run unless they say (an executors name)"
    )


@dataclass
class TasksSection:
    on_interrupt: OnInterrupt = spec(
        factory=OnInterrupt,
        doc="a task cut short by a daemon stop or crash is requeued (using up one of its "
        "max_retries) or failed; a task's own on_interrupt wins",
    )
    requeue_interrupted: bool = spec(
        True,
        doc="older key: false makes both on_interrupt defaults fail (a task's own value wins)",
    )
    retention_days: float = spec(
        7, gt=0, le=36_500, doc="finished tasks older than this are pruned with their logs"
    )
    max_finished: int = spec(
        10_000, ge=0, le=10_000_000, doc="at most this many finished tasks are kept"
    )
    max_finished_mb: float = spec(
        128,
        gt=0,
        le=1_048_576,
        doc="and at most about this much memory (prompt, command, env, metadata, output "
        "tail, error): the oldest finished tasks go first",
    )
    output_tail_bytes: int = spec(
        16_384, ge=0, le=1_048_576, doc="output kept in the store per task (full log on disk)"
    )
    log_max_bytes: int = spec(
        10 * 1_048_576,
        ge=1_024,
        le=1 << 40,
        doc="cap of a task's log: past it, the head and each attempt's last "
        "min(cap / 2, 1 MiB) bytes are kept, the cut marked",
    )
    compact_every: int = spec(
        10_000, ge=10, le=10_000_000, doc="journal entries before tasks.json is rewritten"
    )
    prune_interval_minutes: float = spec(60, gt=0, le=10_080, doc="how often to prune")
    default_executor: str = spec(
        "local", min_len=1, doc='where tasks run unless they say: "local" or an executors name'
    )
    groups: dict[str, TaskGroup] = spec(
        factory=dict,
        doc="named groups a task may join (task.submit group); each with its own "
        "max_parallel inside daemon.max_parallel_actions",
    )

    def interrupt_policy(self, prompt: bool) -> str:
        """The `on_interrupt` a task of this kind gets when it does not say."""
        if not self.requeue_interrupted:
            return "fail"
        return self.on_interrupt.prompt if prompt else self.on_interrupt.command
