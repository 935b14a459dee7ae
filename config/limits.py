"""Resource `limits` of a service, a task, or (agent.limits) every agent prompt.

Stdlib only: the CLI loads the config model. Every field is optional: None = no limit.
Over a limit the process tree goes down the stop ladder, then the service's restart
policy or the task's retry policy applies (aiwgd/monitor/).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiwgd.config.schema import spec


@dataclass
class Limits:
    memory_mb: float | None = spec(None, gt=0, le=1 << 30, doc="RSS of the whole tree")
    cpu_percent: float | None = spec(
        None, gt=0, le=100_000, doc="% of one core, sustained over cpu_window_s"
    )
    cpu_window_s: float = spec(30, gt=0, le=86_400, doc="how long cpu_percent must hold")
    max_runtime_s: float | None = spec(None, gt=0, le=1e9, doc="wall time since the start")
    max_fds: int | None = spec(None, ge=1, le=1 << 24, doc="open file descriptors (tree)")
    no_output_s: float | None = spec(
        None, gt=0, le=1e9, doc="no output for this long = hung (agents waiting for input)"
    )

    def any(self) -> bool:
        """Whether any limit is set."""
        return any(
            v is not None
            for v in (
                self.memory_mb,
                self.cpu_percent,
                self.max_runtime_s,
                self.max_fds,
                self.no_output_s,
            )
        )
