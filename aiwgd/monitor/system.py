"""The machine as `monitor.system` shows it: memory, swap, CPU per core, load average
and the free disk under the project root (blocking: call it from a worker thread)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import psutil


def cpu_per_core() -> list[float]:
    """Each core's busy % since the previous call (psutil keeps that state per process).

    The monitor calls it at every sample, so `monitor.system` shows the last interval
    rather than the few milliseconds since someone else last asked.
    """
    return [round(p, 1) for p in psutil.cpu_percent(interval=None, percpu=True)]


def system_snapshot(root: Path, per_core: list[float] | None) -> dict[str, Any]:
    mem = psutil.virtual_memory()
    swap = psutil.swap_memory()
    if per_core is None:  # nothing sampled yet: measure a short interval now
        per_core = [round(p, 1) for p in psutil.cpu_percent(interval=0.1, percpu=True)]
    disk = shutil.disk_usage(root)
    load = os.getloadavg()
    return {
        "memory": {
            "total_bytes": mem.total,
            "available_bytes": mem.available,
            "used_percent": mem.percent,
        },
        "swap": {"total_bytes": swap.total, "used_bytes": swap.used, "used_percent": swap.percent},
        "cpu": {
            "cores": len(per_core),
            "per_core_percent": per_core,
            "percent": round(sum(per_core) / len(per_core), 1) if per_core else 0.0,
        },
        "load_average": [round(x, 2) for x in load],
        "disk": {
            "path": str(root),
            "total_bytes": disk.total,
            "free_bytes": disk.free,
            "used_percent": round(100 * disk.used / disk.total, 1) if disk.total else 0.0,
        },
    }
