"""Where each `aiwg` command is defined: the root group imports and builds only the one
argv names (cli/lazy.py).

Each module defines its commands with typer and adds them in `register(app)`; the
order here is the order `aiwg --help` lists them in. A new command or group goes in
its module's `register` and here (tests/cli/test_lazy.py fails on one missing here).
Keep each module's top-level imports light: the CLI never imports the daemon's heavy
parts, and a command pays for its own module only.
"""

from __future__ import annotations

DAEMON, CONFIG = "aiwgd.cli.daemon", "aiwgd.cli.config"
TASKS, EVENTS = "aiwgd.cli.tasks", "aiwgd.cli.events"
SCHEDULE, AUTOMATION = "aiwgd.cli.schedule", "aiwgd.cli.automation"
WATCHDOG = "aiwgd.cli.watchdog"
MONITOR = "aiwgd.cli.monitor"
SERVICES = "aiwgd.cli.services"
CHAT, ATTACH = "aiwgd.cli.chat", "aiwgd.cli.attach"

WHERE: dict[str, str] = {
    "start": DAEMON,
    "stop": DAEMON,
    "restart": DAEMON,
    "status": DAEMON,
    "ping": DAEMON,
    "logs": DAEMON,
    "rpc": DAEMON,
    "chat": CHAT,  # -- tasks (issue 3); interactive chat and attach (issue 11)
    "attach": ATTACH,
    "events": EVENTS,  # -- events / dlq (issue 4)
    "emit": EVENTS,
    "config": CONFIG,
    "task": TASKS,
    "dlq": EVENTS,
    "schedule": SCHEDULE,  # -- schedule / automation (issue 4)
    "automation": AUTOMATION,
    "watchdog": WATCHDOG,  # -- hung-process watchdog (issue 10)
    "monitor": MONITOR,  # -- resource monitor and limits (issue 10)
    "service": SERVICES,  # -- long-running services (issue 10)
    "autostart": "aiwgd.cli.autostart",  # -- systemd user unit / launchd agent (issue 12)
    "doctor": "aiwgd.cli.doctor",  # -- setup checks, each with its fix (issue 12)
    "top": "aiwgd.cli.top.command",  # -- the live terminal view (issue 12; loads Textual)
    "worker": "aiwgd.cli.worker",  # -- remote attempts on RQ workers (issue 13)
}
