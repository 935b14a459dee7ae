"""Which subsystems the daemon runs, in start order (stopped in reverse).

Kept apart from daemon.py so adding a subsystem touches only this list and the
subsystem's own module. Each capability has one block below: build its object, keep a
reference on the daemon when another subsystem needs it, register its RPC methods.
Order (ARCHITECTURE.md): events, store, supervisor, services, monitor, automation,
rpc, watcher, scheduler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiwgd.lifecycle import Subsystem

if TYPE_CHECKING:
    from aiwgd.daemon import Daemon


def build_subsystems(daemon: Daemon) -> list[Subsystem]:
    """Everything after the event router, in start order; registers RPC methods too."""
    assert daemon.rpc is not None
    subsystems: list[Subsystem] = []

    # -- events: router files and limits, events.* / dlq.* methods (issue 4) --
    from aiwgd.events import methods as events_api

    daemon.router.configure(daemon.paths, daemon.config.events)
    events_api.register(daemon.api, daemon)

    # -- tasks: store + supervisor (issue 3) --
    from aiwgd.tasks.store.store import TaskStore

    daemon.store = TaskStore(daemon.paths, daemon.config.tasks, daemon.router)
    subsystems.append(daemon.store)
    from aiwgd.tasks import methods as tasks_api
    from aiwgd.tasks.supervisor import Supervisor

    daemon.supervisor = Supervisor(daemon, daemon.store)
    tasks_api.register(daemon.api, daemon.supervisor)
    subsystems.append(daemon.supervisor)

    # -- automation (issue 4) --
    from aiwgd.actions.runner import ActionRunner
    from aiwgd.automation import methods as automation_api
    from aiwgd.automation.engine import Automation

    # Task actions need the supervisor's public submit(); without one they fail clearly.
    supervisor = getattr(daemon, "supervisor", None)
    daemon.actions = ActionRunner(daemon.router, getattr(supervisor, "submit", None))
    daemon.automation = Automation(
        daemon.router, daemon.actions, daemon.config, daemon.paths.runtime_state_file,
        daemon.paths.daemon_dir / "automation.jsonl",
    )  # fmt: skip
    automation_api.register(daemon.api, daemon.automation)
    subsystems.append(daemon.automation)

    subsystems.append(daemon.rpc)

    # -- file watcher (issue 4) --
    from aiwgd.watch.watcher import FileWatcher

    subsystems.append(FileWatcher(daemon.router, daemon.paths, daemon.config))

    # -- scheduler (issue 4) --
    from aiwgd.schedule import methods as schedule_api
    from aiwgd.schedule.scheduler import Scheduler

    daemon.scheduler = Scheduler(
        daemon.router, daemon.actions, daemon.config, daemon.paths.runtime_state_file
    )
    schedule_api.register(daemon.api, daemon.scheduler)
    subsystems.append(daemon.scheduler)

    return subsystems
