"""What the service.* methods answer, as types (published by rpc.discover)."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, TypedDict

Unix = Annotated[float, "Unix time"]


class InstanceBrief(TypedDict):
    name: Annotated[str, "the instance: NAME, or NAME:N when there are several"]
    service: str
    state: Annotated[
        str, "stopped, waiting, starting, running, ready, backoff, stopping, exited, gave_up"
    ]
    reason: Annotated[str, "why it is in this state (waiting for db (ready), ...)"]
    pid: int | None
    uptime_s: float | None
    restarts: int
    health: Annotated[str, "unknown, healthy or unhealthy"]
    cpu_percent: Annotated[float | None, "the monitor's latest sample (% of one core)"]
    rss_bytes: Annotated[int | None, "the monitor's latest sample"]


class HistoryItem(TypedDict):
    time: Unix
    event: Annotated[str, "started, exited, spawn_failed or recovered"]
    instance: str
    reason: NotRequired[str]
    pid: NotRequired[int]
    exit_code: NotRequired[int]
    signal: NotRequired[int]
    uptime_s: NotRequired[float]


class LastExit(TypedDict):
    reason: str
    time: Unix
    exit_code: NotRequired[int | None]
    signal: NotRequired[int | None]
    uptime_s: NotRequired[float]


class InstanceDetail(InstanceBrief):
    starts: int
    last_exit: LastExit | None
    health_detail: Annotated[dict[str, Any] | None, "the health monitor's status"]
    log: Annotated[str, "the instance's log file"]
    history: Annotated[list[HistoryItem], "its last starts and exits, oldest first"]


class Recovered(TypedDict):
    instance: str
    pid: int
    name: str
    how: Annotated[str, "SIGTERM, SIGKILL or survived"]


class ServiceList(TypedDict):
    services: list[InstanceBrief]
    recovered: Annotated[list[Recovered], "left by a killed daemon, stopped at start"]


class ServiceGet(TypedDict):
    instances: list[InstanceDetail]


class ServiceAction(TypedDict):
    instances: list[InstanceBrief]


class Signalled(TypedDict):
    signalled: Annotated[list[str], "the instances that got it"]


class ServiceLogs(TypedDict):
    name: str
    lines: list[str]
    total: Annotated[int, "lines seen since the daemon started (for pollers)"]
    followers: Annotated[int, "follows open on these instances, this one included"]
    following: NotRequired[
        Annotated[bool, "with follow: service.output notifications come on this connection"]
    ]
    subscription_id: NotRequired[Annotated[str, "with follow: names it in its notifications"]]
