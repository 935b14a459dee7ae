"""Config section `monitor`: the sampler of every task and service process tree.

Stdlib only: the CLI loads the config model. The limits themselves live with what they
limit (a service's `limits`, a task's `limits`, `agent.limits`; config/limits.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiwgd.config.schema import spec


@dataclass
class MonitorSection:
    enabled: bool = spec(True, doc="sample children and enforce their limits")
    interval_s: float = spec(5, ge=0.05, le=3_600, doc="seconds between samples (and limit checks)")
    history: int = spec(60, ge=1, le=10_000, doc="samples kept per child for its summary")
