"""`aiwg events [--type T] [-f]`, `aiwg emit TYPE [DATA]`, `aiwg dlq list|replay|purge`."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from aiwgd.cli import render
from aiwgd.cli.options import Json, Root, UsageError, client, emit, json_object_arg, want_json

dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: events a subscriber failed on.")


def _stamp(t: float | None) -> str:
    if not t:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


DATA_WIDTH = 120  # the data shown when no width is known (a pipe); --json has it all
MIN_DATA = 20  # narrower than this left for the data, and the event's id makes room


def event_line(ev: dict[str, Any], columns: int | None = None) -> str:
    """One event for a person: time, type, source, data, id; cut to `columns`."""
    raw = ev.get("data", {})
    # Task events carry the whole task record: unset fields are noise on a terminal.
    shown = (
        {k: v for k, v in raw.items() if v not in (None, {}, [])} if isinstance(raw, dict) else raw
    )
    data = json.dumps(shown, ensure_ascii=False, separators=(",", ":"), default=str)
    head = f"{_stamp(ev.get('time'))}  {ev.get('type')}  [{ev.get('source')}]  "
    tail = f"  {ev.get('id')}"
    if columns is None:
        return head + render.fit(data, DATA_WIDTH) + tail
    # The data is cut first; the id (also in --json) goes when the data would be too short.
    if columns - len(head) - len(tail) < MIN_DATA:
        tail = ""
    room = columns - len(head) - len(tail)
    if len(data) > room:
        return render.fit(head + data, columns)
    return head + data + tail


def events(
    type_: Annotated[
        str | None, typer.Option("--type", "-t", help="event type glob, e.g. 'file.*'")
    ] = None,
    source: Annotated[str | None, typer.Option("--source", help="only this source")] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="recent events shown")] = 50,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="keep printing events as they happen")
    ] = False,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Recent events, oldest first; -f subscribes and prints new ones as they come."""
    as_json = want_json(json_out)
    params: dict[str, Any] = {"limit": limit}
    if type_:
        params["type"] = type_
    if source:
        params["source"] = source
    if not follow:
        with client(root) as c:
            listed = c.call("events.list", **params)["events"]
        if not listed and not as_json:
            typer.echo("no events")
        for ev in listed:
            _print_event(ev, as_json)  # --json: one event per line, as -f prints them
        return
    _follow(root, type_ or "*", source, params, as_json)  # until Ctrl-C (exit 130)


def _follow(
    root: str | None, pattern: str, source: str | None, params: dict[str, Any], as_json: bool
) -> None:
    with client(root, timeout=None) as c:
        # Subscribe before listing, so nothing falls between the two; skip repeats.
        c.call("events.subscribe", types=[pattern])
        seen: set[str] = set()
        for ev in c.call("events.list", **params)["events"]:
            seen.add(ev["id"])
            _print_event(ev, as_json)
        for msg in c.notifications():
            if msg.get("method") == "events.dropped":
                typer.echo(f"aiwg: {msg['params'].get('message')}", err=True)
                continue
            ev = msg.get("params") or {}
            if msg.get("method") != "event" or ev.get("id") in seen:
                continue
            if source and ev.get("source") != source:
                continue
            _print_event(ev, as_json)


def _print_event(ev: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(ev, ensure_ascii=False, default=str))  # one event per line
    else:
        typer.echo(event_line(ev, render.width()))


def emit_event(
    type_: Annotated[str, typer.Argument(metavar="TYPE", help='dotted, e.g. "ci.finished"')],
    data: Annotated[str, typer.Argument(help="the event's data as a JSON object")] = "{}",
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Publish an event (source "rpc"), e.g. from a CI script."""
    parsed = json_object_arg(data, "DATA")
    with client(root) as c:
        ev = c.call("events.emit", type=type_, data=parsed)
    emit(ev, want_json(json_out), f"emitted {ev['type']} ({ev['id']})")


def _entry_lines(entry: dict[str, Any]) -> list[str]:
    ev = entry.get("event", {})
    return [
        f"{entry['id']}  {_stamp(entry.get('time'))}  subscriber={entry.get('subscriber')}  "
        f"attempts={entry.get('attempts')}",
        f"    event: {ev.get('type')} {ev.get('id')}",
        f"    error: {entry.get('error')}",
    ]


@dlq_app.command("list")
def dlq_list(
    subscriber: Annotated[str | None, typer.Option("--subscriber", help="only this one")] = None,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Dead letters, oldest first."""
    params = {"subscriber": subscriber} if subscriber else {}
    with client(root) as c:
        result = c.call("dlq.list", **params)
    lines = [line for e in result["entries"] for line in _entry_lines(e)]
    human = "\n".join(lines) if lines else "the dead-letter queue is empty"
    emit(result, want_json(json_out), human)


@dlq_app.command("replay")
def dlq_replay(
    entry_id: Annotated[str | None, typer.Argument(metavar="ID", help="a dead letter's id")] = None,
    all_: Annotated[bool, typer.Option("--all", help="replay every dead letter")] = False,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Hand dead letters back to the subscriber that failed (ID, or --all)."""
    if (entry_id is None) == (not all_):
        raise UsageError("give a dead letter's ID or --all (not both)")
    with client(root) as c:
        result = c.call("dlq.replay", **({"all": True} if all_ else {"id": entry_id}))
    lines = [f"replayed {i}" for i in result["replayed"]]
    lines += [f"skipped {s['id']}: {s['reason']} ({s['subscriber']})" for s in result["skipped"]]
    emit(result, want_json(json_out), "\n".join(lines) or "nothing to replay")
    if result["skipped"] and not result["replayed"]:
        raise typer.Exit(1)


@dlq_app.command("purge")
def dlq_purge(
    entry_id: Annotated[str | None, typer.Argument(metavar="ID", help="only this entry")] = None,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Drop dead letters (all, or one by ID)."""
    with client(root) as c:
        result = c.call("dlq.purge", **({"id": entry_id} if entry_id else {}))
    emit(result, want_json(json_out), f"purged {result['purged']} dead letter(s)")


def register(app: typer.Typer) -> None:
    app.command("events")(events)
    app.command("emit")(emit_event)
    app.add_typer(dlq_app, name="dlq")
