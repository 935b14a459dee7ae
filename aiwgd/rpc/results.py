"""What the daemon-level methods answer (ping, daemon.*, rpc.discover), as types.

`rpc.discover` publishes their JSON Schemas (aiwgd.rpc.resultschema); the OpenRPC
document itself is built from the TypedDicts below, so mypy checks the builder too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, TypedDict

from aiwgd.rpc.resultschema import OPEN

Pong = Literal["pong"]


class ConfigState(TypedDict):
    path: str
    status: Annotated[str, '"ok", or "reload_failed" while running on the previous config']
    errors: list[str]
    at: float | None


class SubsystemStatus(TypedDict):
    state: str


class HealthScore(TypedDict):
    score: Annotated[int, "0-100: the share of enabled subsystems and services that are healthy"]
    unhealthy: Annotated[list[str], 'what is not: subsystem names and "service:NAME"']


class DaemonStatus(TypedDict):
    pid: int
    root: str
    started_at: float
    uptime_s: float
    heartbeat_at: float | None
    state: Literal["running", "stopping"]
    config: ConfigState
    # Each subsystem reports its own counters (queues, files, errors); they are for
    # people and dashboards and grow with the subsystems, so only `state` is promised.
    subsystems: dict[str, Annotated[SubsystemStatus, OPEN, "the subsystem's own counters"]]
    children: int
    health: HealthScore


class Stopping(TypedDict):
    stopping: bool
    pid: int


class Reloaded(TypedDict):
    reloaded: bool
    config: Annotated[str, "the config file applied"]


# ---- the OpenRPC document (https://spec.open-rpc.org), as rpc.discover builds it ------


class Info(TypedDict):
    title: str
    version: str


class ContentDescriptor(TypedDict):
    name: str
    required: NotRequired[bool]
    schema: dict[str, Any]


class ErrorObject(TypedDict):
    code: int
    message: str


class MethodObject(TypedDict):
    name: str
    summary: str
    paramStructure: Literal["by-name"]
    params: list[ContentDescriptor]
    result: ContentDescriptor
    errors: list[ErrorObject]


class OpenRpcDocument(TypedDict):
    openrpc: str
    info: Info
    methods: list[MethodObject]
