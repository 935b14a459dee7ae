"""Which subsystems the daemon runs, in start order (stopped in reverse), and what
each one is given.

Every subsystem gets only its collaborators: its config, the router, the store, the
lifecycle (stop signals), the project paths. None gets the daemon. Each capability
registers its RPC methods from its own `methods.py` here. Order (ARCHITECTURE.md):
events, store, supervisor, services, monitor, automation, watchdog, rpc, watcher,
scheduler. The watchdog starts after what it must spare (tasks, services) is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiwgd.actions.runner import ActionRunner
from aiwgd.agents.budget import AgentBudget
from aiwgd.automation import methods as automation_methods
from aiwgd.automation.engine import Automation
from aiwgd.config import Config, Paths
from aiwgd.events import methods as events_methods
from aiwgd.events.router import EventRouter
from aiwgd.lifecycle import Lifecycle, Subsystem
from aiwgd.monitor import methods as monitor_methods
from aiwgd.monitor.monitor import Monitor
from aiwgd.procs.kills import KillLog
from aiwgd.procs.registry import ChildRegistry
from aiwgd.rpc import methods as rpc_methods
from aiwgd.rpc.protocol import Dispatcher
from aiwgd.rpc.registry import Api
from aiwgd.rpc.server import RpcServer
from aiwgd.schedule import methods as schedule_methods
from aiwgd.schedule.scheduler import Scheduler
from aiwgd.services import methods as services_methods
from aiwgd.services.manager import Services
from aiwgd.tasks import methods as tasks_methods
from aiwgd.tasks.executors import methods as executor_methods
from aiwgd.tasks.executors.local import LocalExecutor
from aiwgd.tasks.executors.routing import Executors, RemoteExecutor
from aiwgd.tasks.store.store import TaskStore
from aiwgd.tasks.supervisor import Supervisor
from aiwgd.watch.watcher import FileWatcher
from aiwgd.watchdog import methods as watchdog_methods
from aiwgd.watchdog.watchdog import Watchdog


@dataclass
class Subsystems:
    """The daemon's running parts, built once per start."""

    router: EventRouter
    store: TaskStore
    supervisor: Supervisor
    automation: Automation
    rpc: RpcServer
    watcher: FileWatcher
    scheduler: Scheduler
    services: Services
    monitor: Monitor
    watchdog: Watchdog
    children: ChildRegistry  # every live child process, for status and the monitor

    def in_start_order(self) -> list[Subsystem]:
        return [
            self.router,
            self.store,
            self.supervisor,
            self.services,
            self.monitor,
            self.automation,
            self.watchdog,
            self.rpc,
            self.watcher,
            self.scheduler,
        ]


def build(
    config: Config, paths: Paths, lifecycle: Lifecycle, daemon: rpc_methods.DaemonControl
) -> Subsystems:
    """Create every subsystem (nothing starts yet) and bind the RPC method table."""
    api = Api()
    rpc_methods.register(api, daemon)

    router = EventRouter()
    router.configure(paths, config.events)
    events_methods.register(api, router)

    store = TaskStore(paths, config.tasks, router)
    children = ChildRegistry()
    agents = AgentBudget(config, store, router.publish)  # stream-json runs, budgets
    local = LocalExecutor(config, paths.root, lifecycle, children, agents)
    executor = Executors(local, config, lambda name, cfg: _remote_executor(name, cfg, paths.root))
    supervisor = Supervisor(
        config, paths.root, store, lifecycle, executor, usage_of=children.usage_of, agents=agents
    )
    tasks_methods.register(api, supervisor)
    executor_methods.register(api, executor)

    services = Services(config, paths, router, children, lifecycle)
    services_methods.register(api, services)

    kills = KillLog(paths.kills_file)  # one for both: what limits and the watchdog killed
    monitor = Monitor(config.monitor, children, router.publish, kills, paths.root)
    monitor_methods.register(api, monitor)

    actions = ActionRunner(router, supervisor.submit, supervisor.cancel)
    automation = Automation(
        router, actions, config, paths.runtime_state_file, paths.daemon_dir / "automation.jsonl"
    )
    automation_methods.register(api, automation)

    scheduler = Scheduler(router, actions, config, paths.runtime_state_file)
    schedule_methods.register(api, scheduler)

    watchdog = Watchdog(router, children, paths.root, kills, config.watchdog)
    watchdog_methods.register(api, watchdog)

    rpc = RpcServer(
        paths.socket_address(), Dispatcher(api.handlers()), config.daemon.max_request_bytes
    )
    watcher = FileWatcher(router, paths, config)
    return Subsystems(
        router=router,
        store=store,
        supervisor=supervisor,
        automation=automation,
        rpc=rpc,
        watcher=watcher,
        scheduler=scheduler,
        services=services,
        monitor=monitor,
        watchdog=watchdog,
        children=children,
    )


def _remote_executor(name: str, config: Config, root: Path) -> RemoteExecutor:
    # Imported here: rq and redis are loaded only by a daemon that has an executor.
    from aiwgd.remote.executor import RqExecutor

    return RqExecutor(name, config.executors[name], config, root)
