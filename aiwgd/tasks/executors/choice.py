"""Which executor a task's attempts run on, decided once at submit."""

from __future__ import annotations

import sys

from aiwgd.config import Config
from aiwgd.config.executors import LOCAL


def choose_executor(
    config: Config, asked: str | None, group: str | None, prompt: bool, has_env: bool
) -> str | None:
    """The task's executor (None: the daemon itself): its own choice (`asked`), else its
    group's, else agent.executor for a prompt, else tasks.default_executor. ValueError
    says why it cannot be used."""
    grp = config.tasks.groups.get(group) if group else None
    name = (
        asked
        or (grp.executor if grp is not None else None)
        or (config.agent.executor if prompt else None)
        or config.tasks.default_executor
    )
    if name == LOCAL:
        return None
    if name not in config.executors:
        known = ", ".join([LOCAL, *config.executors])
        raise ValueError(f'executor: unknown executor "{name}" (configured: {known})')
    if has_env:
        # Values of env are secrets to the store (tasks.model): they never reach disk,
        # and Redis would keep them there.
        raise ValueError(
            f"env: values are not sent to executor {name} (Redis would store them); "
            "set them in the worker's environment, or run the task locally"
        )
    return sys.intern(name)
