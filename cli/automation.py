"""`aiwg automation status|enable|disable|test|log|pending|approve|reject`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from aiwgd.cli.options import Json, Root, client, emit, json_object_arg, want_json
from aiwgd.cli.render import ago

automation_app = typer.Typer(
    no_args_is_help=True, help="Rules: status, switches, dry runs, the log and approvals."
)

RuleOpt = Annotated[str | None, typer.Argument(help="one rule's id; omit for all automation")]
ExecId = Annotated[str, typer.Argument(help="execution id (see `aiwg automation pending`)")]


def render_status(result: dict[str, Any]) -> str:
    lines = [
        f"automation is {'enabled' if result.get('enabled') else 'DISABLED'}; "
        f"{result.get('pending', 0)} pending approval"
    ]
    rules = result.get("rules", [])
    if not rules:
        lines.append("no rules (add them under rules in .aiwg/daemon.json)")
    for r in rules:
        c = r["counts"]
        trig = r["trigger"]["type"] + (
            f" from {r['trigger']['source']}" if r["trigger"]["source"] else ""
        )
        lines.append(
            f"{r['id']}  [{'on ' if r['enabled'] else 'off'}]  {trig} -> {r['action']}"
            + ("  (needs approval)" if r.get("requires_approval") else "")
            + (f"  overlap {r['overlap']}" if r.get("overlap") else "")
        )
        # Runs the overlap policy dropped or cancelled, only when there were some.
        extra = "".join(f", {c[k]} {k}" for k in ("skipped", "replaced") if c.get(k))
        lines.append(
            f"    matched {c['matched']}, ran {c['executed']} ({c['succeeded']} ok, "
            f"{c['failed']} failed), held back {c['suppressed']}{extra}; last "
            f"{ago(r.get('last_fired_at'))}: {r.get('last_result') or '-'}"
        )
    return "\n".join(lines)


def _outcome(e: dict[str, Any]) -> str:
    if e.get("error"):
        return str(e["error"])
    if e.get("task_id"):
        return f"task {e['task_id']} {e.get('task_state') or ''}".rstrip()
    return json.dumps(e["result"]) if e.get("result") else ""


def render_executions(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no executions"
    lines = []
    for e in items:
        head = f"{e['id']}  {ago(e.get('created_at'))}  {e['rule_id']}"
        body = f"{e['event_type']} ({e['event_id']})  {e['state']}  {_outcome(e)}"
        lines.append(f"{head}  {body}".rstrip())
    return "\n".join(lines)


def render_test(result: dict[str, Any]) -> str:
    lines = [f"event {result['event']['type']} (source {result['event']['source']})"]
    if not result.get("enabled"):
        lines.append("automation is disabled: nothing would run")
    for r in result.get("rules", []):
        if r["matched"] and r.get("would_run"):
            note = " after approval" if r.get("requires_approval") else ""
            guard = f" (but now held back: {r['guard']})" if r.get("guard") else ""
            lines.append(f"  {r['rule_id']}: WOULD RUN{note}{guard}: {json.dumps(r['action'])}")
        elif r["matched"]:
            why = r.get("error") or "; ".join(r.get("reasons", []))
            lines.append(f"  {r['rule_id']}: matches but would not run: {why}")
        else:
            lines.append(f"  {r['rule_id']}: no match: {'; '.join(r['reasons'])}")
    return "\n".join(lines)


@automation_app.command("status")
def _status(root: Root = None, json_out: Json = False) -> None:
    """Whether automation is on; every rule with counts, last fire and result."""
    with client(root) as c:
        result = c.call("automation.status")
    emit(result, want_json(json_out), render_status(result))


def _switch(on: bool, rule_id: str | None, root: str | None, json_out: bool) -> None:
    params = {"rule_id": rule_id} if rule_id else {}
    with client(root) as c:
        result = c.call("automation.enable" if on else "automation.disable", **params)
    what = f"rule {rule_id}" if rule_id else "automation"
    emit(result, want_json(json_out), f"{what} {'enabled' if on else 'disabled'}")


@automation_app.command("enable")
def _enable(rule_id: RuleOpt = None, root: Root = None, json_out: Json = False) -> None:
    """Switch automation (or one rule) on; kept across restarts."""
    _switch(True, rule_id, root, json_out)


@automation_app.command("disable")
def _disable(rule_id: RuleOpt = None, root: Root = None, json_out: Json = False) -> None:
    """Switch automation (or one rule) off; kept across restarts."""
    _switch(False, rule_id, root, json_out)


@automation_app.command("test")
def _test(
    event_type: Annotated[str, typer.Argument(help="event type, e.g. file.modified")],
    data: Annotated[str, typer.Argument(help="event data as a JSON object")] = "{}",
    source: Annotated[str, typer.Option("--source", help="event source")] = "rpc",
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Dry run: which rules an event would trigger and what they would do (nothing runs)."""
    parsed = json_object_arg(data, "DATA", 'a JSON object, e.g. \'{"path": "src/a.py"}\'')
    event = {"type": event_type, "data": parsed, "source": source}
    with client(root) as c:
        result = c.call("automation.test", event=event)
    emit(result, want_json(json_out), render_test(result))


@automation_app.command("log")
def _log(
    rule: Annotated[str | None, typer.Option("--rule", help="only this rule")] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, max=1000)] = 20,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Recent rule executions, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if rule:
        params["rule_id"] = rule
    with client(root) as c:
        result = c.call("automation.log", **params)
    emit(result, want_json(json_out), render_executions(result["executions"]))


@automation_app.command("pending")
def _pending(root: Root = None, json_out: Json = False) -> None:
    """Executions waiting for approval."""
    with client(root) as c:
        result = c.call("automation.pending")
    human = render_executions(result["pending"]) if result["pending"] else "nothing pending"
    emit(result, want_json(json_out), human)


@automation_app.command("approve")
def _approve(execution_id: ExecId, root: Root = None, json_out: Json = False) -> None:
    """Run a pending execution's action now."""
    with client(root) as c:
        result = c.call("automation.approve", execution_id=execution_id)
    emit(result, want_json(json_out), f"approved {execution_id}: {result['state']}")


@automation_app.command("reject")
def _reject(
    execution_id: ExecId,
    reason: Annotated[str | None, typer.Option("--reason", help="kept in the log")] = None,
    root: Root = None,
    json_out: Json = False,
) -> None:
    """Drop a pending execution without running it."""
    params: dict[str, Any] = {"execution_id": execution_id}
    if reason:
        params["reason"] = reason
    with client(root) as c:
        result = c.call("automation.reject", **params)
    emit(result, want_json(json_out), f"rejected {execution_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(automation_app, name="automation")
