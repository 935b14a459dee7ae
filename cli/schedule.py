"""`aiwg schedule list|run|enable|disable`: the daemon's cron jobs."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

import typer

from aiwgd.cli import render
from aiwgd.cli.options import Json, Root, client, emit, want_json
from aiwgd.cli.render import ago

schedule_app = typer.Typer(no_args_is_help=True, help="List, run, enable and disable cron jobs.")

JobId = Annotated[str, typer.Argument(help="the job's id (see `aiwg schedule list`)")]


def _when(iso: str | None) -> str:
    """An ISO time with how far away it is: `2026-03-09T03:30:00-04:00 (in 2h05m)`."""
    if not iso:
        return "-"
    try:
        delta = datetime.fromisoformat(iso).timestamp() - time.time()
    except ValueError:
        return iso
    rel = f"in {render.duration(delta)}" if delta >= 0 else f"{render.duration(-delta)} ago"
    return f"{iso} ({rel})"


def _action(action: Any) -> str:
    if isinstance(action, str):
        return f"label {action!r}"
    return str(action.get("type", "?"))


def render_jobs(result: dict[str, Any]) -> str:
    jobs = result.get("jobs", [])
    if not jobs:
        return "no scheduled jobs (add them under schedule.jobs in .aiwg/daemon.json)"
    lines = [] if result.get("enabled", True) else ["the scheduler is disabled (schedule.enabled)"]
    for job in jobs:
        state = "on " if job["enabled"] else "off"
        lines.append(
            f"{job['id']}  [{state}]  {job['cron']}  ({job['timezone']})  "
            f"{_action(job['action'])}  overlap={job['overlap']}"
            + ("  catch_up" if job.get("catch_up") else "")
        )
        lines.append(f"    next: {_when(job.get('next_fire'))}")
        last = ago(job.get("last_run_at"))
        result_text = job.get("last_result")
        lines.append(f"    last: {last}: {result_text}" if result_text else f"    last: {last}")
        if job.get("running"):
            lines.append(f"    running: {', '.join(job['running'])}; queued: {job['queued']}")
    return "\n".join(lines)


@schedule_app.command("list")
def _list(root: Root = None, json_out: Json = False) -> None:
    """Every job with its next fire time, last run and result."""
    with client(root) as c:
        result = c.call("schedule.list")
    emit(result, want_json(json_out), render_jobs(result))


@schedule_app.command("run")
def _run(job_id: JobId, root: Root = None, json_out: Json = False) -> None:
    """Fire a job now (its overlap policy applies)."""
    with client(root) as c:
        result = c.call("schedule.run", id=job_id)
    if result.get("fired"):
        human = f"fired {job_id} (event {result.get('event_id')})"
    elif result.get("queued"):
        human = f"queued {job_id}: its previous run is still going"
    else:
        human = f"skipped {job_id}: its previous run is still going"
    emit(result, want_json(json_out), human)


def _switch(job_id: str, on: bool, root: str | None, json_out: bool) -> None:
    with client(root) as c:
        result = c.call("schedule.enable" if on else "schedule.disable", id=job_id)
    nxt = f"; next fire {result['next_fire']}" if result.get("next_fire") else ""
    emit(result, want_json(json_out), f"{job_id} {'enabled' if on else 'disabled'}{nxt}")


@schedule_app.command("enable")
def _enable(job_id: JobId, root: Root = None, json_out: Json = False) -> None:
    """Switch a job on (kept across restarts)."""
    _switch(job_id, True, root, json_out)


@schedule_app.command("disable")
def _disable(job_id: JobId, root: Root = None, json_out: Json = False) -> None:
    """Switch a job off (kept across restarts)."""
    _switch(job_id, False, root, json_out)


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")
