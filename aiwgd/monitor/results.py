"""What the monitor.* methods answer, as types (published by rpc.discover)."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict


class History(TypedDict, total=False):
    samples: int
    cpu_avg: float
    cpu_max: float
    rss_avg_bytes: int
    rss_max_bytes: int


class ProcessUsage(TypedDict):
    owner: Annotated[str, "task:<id> or service:<name>"]
    kind: Annotated[str, "task or service"]
    name: Annotated[str, "the task id or the service name"]
    pid: Annotated[int, "the leader (its process group)"]
    processes: Annotated[int | None, "live processes in the tree (None: not sampled yet)"]
    cpu_percent: Annotated[float | None, "% of one core over the last interval, whole tree"]
    rss_bytes: Annotated[int | None, "resident memory of the whole tree"]
    fds: Annotated[int | None, "open file descriptors of the whole tree"]
    threads: Annotated[int | None, "threads of the whole tree"]
    runtime_s: Annotated[float, "wall time since the start"]
    last_output_s_ago: Annotated[float, "seconds since it last wrote output (or started)"]
    sampled_s_ago: float | None
    limits: Annotated[dict[str, Any] | None, "its limits (config/limits.py), if any"]
    history: History


class Processes(TypedDict):
    interval_s: float
    processes: list[ProcessUsage]


class SystemUsage(TypedDict):
    memory: Annotated[dict[str, Any], "total_bytes, available_bytes, used_percent"]
    swap: Annotated[dict[str, Any], "total_bytes, used_bytes, used_percent"]
    cpu: Annotated[dict[str, Any], "cores, per_core_percent, percent (the mean)"]
    load_average: Annotated[list[float], "1, 5 and 15 minutes"]
    disk: Annotated[dict[str, Any], "path (the project root), total_bytes, free_bytes"]
