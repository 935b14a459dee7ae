"""Command groups of the later capabilities (tasks, events, schedule, automation).

Each capability adds a `register_*` call below; main.py calls `register(app)` once.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach every capability's command group to the root app."""
