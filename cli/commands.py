"""Command groups of the later capabilities (tasks, events, schedule, automation).

Each capability lives in its own module with a `register(app)` function; main.py calls
`register(app)` here once. Keep imports inside the functions' modules light: the CLI
never imports the daemon's heavy parts.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach every capability's command group to the root app."""
    # -- tasks (issue 3) --
    from aiwgd.cli import tasks

    tasks.register(app)

    # -- events / dlq (issue 4) --
    from aiwgd.cli import events

    events.register(app)

    # -- schedule / automation (issue 4) --
    from aiwgd.cli import automation, schedule

    schedule.register(app)
    automation.register(app)
