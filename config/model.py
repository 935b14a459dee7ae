"""The configuration model: one dataclass per section of `.aiwg/daemon.json`.

Key names match the original AIWG daemon so its files load unchanged and mean the same
(its `webhook` section, which nothing here ever read, is dropped unread: RETIRED_KEYS).
Defaults match it too, except two that suited no project but its own: the watch on
`src/` and `test/` (folders most projects lack) and two cron jobs whose labels nothing
handled; the defaults now watch `.aiwg/` only and schedule nothing.
Adding a section means adding one class here (or in a sibling module) and one field
on `Config`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from aiwgd.config.agent import AgentSection
from aiwgd.config.events import EventsSection
from aiwgd.config.executors import RqExecutorConfig, executors_issues
from aiwgd.config.monitor import MonitorSection
from aiwgd.config.schema import spec
from aiwgd.config.services import Service, services_issues
from aiwgd.config.tasks import TasksSection
from aiwgd.config.templates import strings_in, template_error
from aiwgd.config.watchdog import WatchdogSection

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
FILE_EVENTS = ("create", "modify", "delete")


def env_name(value: str) -> str | None:
    if not ENV_NAME.match(value):
        return (
            "is not an environment variable name (secrets never live in the config: "
            "put the secret in the environment and name the variable here)"
        )
    return None


def cron_expr(value: str) -> str | None:
    # Imported here: croniter is heavy and only validation needs it.
    from aiwgd.config.cron import cron_error

    return cron_error(value)


def regex(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"is not a valid regular expression ({exc})"
    return None


def timezone_name(value: str) -> str | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return 'is not a known IANA time zone (e.g. "Europe/Berlin", "UTC")'
    return None


@dataclass
class LogSection:
    max_size_mb: float = spec(50, gt=0, le=10_000, doc="rotate daemon.log at this size")
    max_files: int = spec(5, ge=1, le=100, doc="rotated files kept (daemon.log.1 .. .N)")
    level: str = spec("info", choices=LOG_LEVELS)
    format: str = spec(
        "text", choices=LOG_FORMATS, doc="stderr lines: text (readable) or json; the file is JSON"
    )


@dataclass
class DaemonSection:
    heartbeat_interval_seconds: float = spec(30, gt=0, le=86_400)
    max_parallel_actions: int = spec(3, ge=1, le=256, doc="concurrency cap for tasks")
    action_timeout_minutes: float = spec(120, gt=0, le=10_080, doc="default task timeout")
    stop_grace_seconds: float = spec(10, ge=0, le=3_600, doc="SIGTERM to SIGKILL wait")
    max_request_bytes: int = spec(
        1_048_576, ge=1_024, le=256 * 1_048_576, doc="longest accepted RPC line"
    )
    log: LogSection = spec(factory=LogSection)


@dataclass
class WatchPath:
    path: str = spec(min_len=1)
    events: list[str] = spec(factory=lambda: list(FILE_EVENTS))
    ignore: list[str] = spec(factory=list, doc="gitignore-style globs, relative to path")
    extensions: list[str] = spec(factory=list, doc='e.g. [".py", ".test.ts"]; empty = all')

    def validate(self) -> list[tuple[str, str]]:
        from aiwgd.config.globs import glob_error

        out = [
            (f"events[{i}]", f'"{e}" is not a file event (must be one of {", ".join(FILE_EVENTS)})')
            for i, e in enumerate(self.events)
            if e not in FILE_EVENTS
        ]
        for i, pattern in enumerate(self.ignore):
            reason = glob_error(pattern)
            if reason:
                out.append((f"ignore[{i}]", f"{pattern!r} {reason}"))
        return out


def _default_watch_paths() -> list[WatchPath]:
    # Only the folder every project has once the daemon ran; a project adds its own.
    return [WatchPath(".aiwg/", list(FILE_EVENTS), ["*.tmp", "working/**", "daemon/**"])]


@dataclass
class WatchSection:
    enabled: bool = True
    debounce_ms: int = spec(2000, ge=0, le=3_600_000)
    paths: list[WatchPath] = spec(factory=_default_watch_paths)


@dataclass
class Action:
    """What a rule or a scheduled job does. Fields used depend on `type`."""

    type: Literal["task", "emit", "webhook", "log"]
    prompt: str | None = None
    command: list[str] | None = None
    agent: str | None = None
    priority: int | str | None = None
    timeout_s: float | None = spec(None, gt=0)
    event_type: str | None = None
    data: dict[str, Any] | None = None
    url: str | None = None
    secret_env: str | None = spec(None, check=env_name)
    message: str | None = None

    def validate(self) -> list[tuple[str, str]]:
        needs = {
            "task": (),
            "emit": ("event_type",),
            "webhook": ("url",),
            "log": ("message",),
        }[self.type]
        out = [
            (n, f'is required for a "{self.type}" action')
            for n in needs
            if getattr(self, n) is None
        ]
        if self.type == "task" and (self.prompt is None) == (self.command is None):
            out.append(("", 'a "task" action needs exactly one of "prompt" or "command"'))
        if self.command is not None and not self.command:
            out.append(("command", "must not be empty"))
        if self.url is not None and not re.match(r"^https?://", self.url):
            out.append(("url", f'"{self.url}" is not an http:// or https:// URL'))
        for name in _ACTION_FIELDS:
            if getattr(self, name) is not None and name not in _FIELDS_FOR[self.type]:
                out.append((name, f'is not used by a "{self.type}" action'))
        for name in ("prompt", "command", "agent", "event_type", "data", "url", "message"):
            for sub, text in strings_in(getattr(self, name), name):
                reason = template_error(text)
                if reason:
                    out.append((sub, f"{text!r} {reason}"))
        return out


# Which optional Action fields each action type reads (the rest must stay unset).
_ACTION_FIELDS = (
    "prompt",
    "command",
    "agent",
    "priority",
    "timeout_s",
    "event_type",
    "data",
    "url",
    "secret_env",
    "message",
)
_FIELDS_FOR = {
    "task": ("prompt", "command", "agent", "priority", "timeout_s"),
    "emit": ("event_type", "data"),
    "webhook": ("url", "secret_env", "timeout_s"),
    "log": ("message",),
}


@dataclass
class ScheduleJob:
    id: str = spec(min_len=1)
    cron: str = spec(check=cron_expr)
    action: str | Action = spec(doc="a label carried in cron.fired, or an action that runs")
    timezone: str | None = spec(None, check=timezone_name)
    enabled: bool = True
    overlap: str = spec("skip", choices=("skip", "queue", "allow"))
    catch_up: bool = False


@dataclass
class ScheduleSection:
    enabled: bool = True
    jobs: list[ScheduleJob] = spec(factory=list)  # a job with nothing to do is noise

    def validate(self) -> list[tuple[str, str]]:
        return _duplicate_ids("jobs", [j.id for j in self.jobs])


CONDITION_OPS = (
    "eq",
    "ne",
    "in",
    "contains",
    "matches",
    "glob",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "not_exists",
)


@dataclass
class Trigger:
    type: str = spec(min_len=1, doc="event type glob, e.g. file.*")
    source: str | None = None


@dataclass
class Condition:
    field: str = spec(min_len=1, doc="dotted path into the event, e.g. data.path")
    op: str = spec(choices=CONDITION_OPS)
    value: Any = None

    def validate(self) -> list[tuple[str, str]]:
        if self.op == "matches":
            reason = regex(self.value) if isinstance(self.value, str) else "is not a string"
            if reason:
                return [("value", f"{self.value!r} {reason}")]
        if self.op == "in" and not isinstance(self.value, list):
            return [("value", 'must be a list for op "in"')]
        return []


# What a rule's trigger does while an earlier run of the rule is still going
# (aiwgd.actions.overlap); cron jobs have skip, queue and allow.
RULE_OVERLAP = ("skip", "queue", "replace", "allow")


@dataclass
class Rule:
    id: str = spec(min_len=1)
    trigger: Trigger = spec()
    action: Action = spec()
    description: str = ""
    conditions: list[Condition] = spec(factory=list)
    cooldown_s: float = spec(0, ge=0, doc="a trigger held back by it runs when it ends")
    max_per_minute: int = spec(30, ge=1, le=10_000)
    enabled: bool = True
    requires_approval: bool = False
    overlap: str | None = spec(
        None,
        choices=RULE_OVERLAP,
        doc="while a run is going: skip, queue (one waits, the latest), replace, allow; "
        "default queue for task actions, allow for the others",
    )

    @property
    def overlap_policy(self) -> str:
        """`overlap`, or its default: queue for a task action, allow for the others.

        A task (a test run, an agent) is worth coalescing; a notification (emit,
        webhook, log) is owed to every event.
        """
        if self.overlap is not None:
            return self.overlap
        return "queue" if self.action.type == "task" else "allow"

    def validate(self) -> list[tuple[str, str]]:
        if self.overlap == "replace" and self.action.type != "task":
            return [
                (
                    "overlap",
                    '"replace" cancels the running task, so it needs a "task" action '
                    f'(this rule\'s action is "{self.action.type}"); use "queue" or "skip"',
                )
            ]
        return []


def _duplicate_ids(key: str, ids: list[str]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    out = []
    for i, ident in enumerate(ids):
        if ident in seen:
            out.append((f"{key}[{i}].id", f'"{ident}" is used twice; ids must be unique'))
        seen.add(ident)
    return out


# Top-level keys of earlier versions that nothing reads any more: load.parse_config
# drops them before validation, so files that still hold them load unchanged, and they
# are never written again. `webhook` configured an inbound webhook server that was
# never built; every first start wrote its defaults into `.aiwg/daemon.json`.
RETIRED_KEYS = frozenset({"webhook"})


@dataclass
class Config:
    """The whole validated configuration; one instance per (re)load."""

    daemon: DaemonSection = spec(factory=DaemonSection)
    watch: WatchSection = spec(factory=WatchSection)
    schedule: ScheduleSection = spec(factory=ScheduleSection)
    rules: list[Rule] = spec(factory=list)
    events: EventsSection = spec(factory=EventsSection)
    tasks: TasksSection = spec(factory=TasksSection)
    agent: AgentSection = spec(factory=AgentSection)
    monitor: MonitorSection = spec(factory=MonitorSection)
    watchdog: WatchdogSection = spec(factory=WatchdogSection)
    services: dict[str, Service] = spec(factory=dict, doc="long-running programs")
    executors: dict[str, RqExecutorConfig] = spec(
        factory=dict, doc='where else attempts run: {NAME: {type: "rq", url, ...}}'
    )

    def validate(self) -> list[tuple[str, str]]:
        named = [
            ("tasks.default_executor", self.tasks.default_executor),
            ("agent.executor", self.agent.executor),
            *((f"tasks.groups.{g}.executor", grp.executor) for g, grp in self.tasks.groups.items()),
        ]
        return (
            _duplicate_ids("rules", [r.id for r in self.rules])
            + services_issues(self.services)
            + executors_issues(self.executors, named)
        )
